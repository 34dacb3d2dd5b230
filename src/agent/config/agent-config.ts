import { existsSync } from "node:fs";
import { z } from "zod";
import { NODE_ID_PATTERN } from "../../protocol/registry.js";
import { SPLIT_MODES } from "../../protocol/split.js";
import { checkUnique } from "../../core/config/unique-check.js";
import { checkBinding } from "../../core/config/binding-check.js";
import { SECRET_ENV, secretKey } from "../../core/config/secret-env.js";
import { checkNatsCredentials, NATS_CONFIG_KEYS } from "../../core/nats/nats-config.js";
import { expandHome } from "../../core/paths.js";

const seconds = (fallback: number) => z.number().positive().default(fallback);

/** A model the agent can serve (SPEC §2 `models[]`). */
export const ModelEntrySchema = z.strictObject({
  /** Name exposed by the API. */
  model_id: z
    .string()
    .min(1)
    .regex(/^[A-Za-z0-9][A-Za-z0-9._:/@+-]*$/, "letters, digits and . _ : / @ + - only"),
  /** Exact GGUF file to load. */
  path: z
    .string()
    .min(1, { message: "must not be empty", abort: true })
    .refine((path) => existsSync(expandHome(path)), "model file not found"),
  /** Roles this model can satisfy. */
  roles: z.array(z.string().min(1)).default([]),
  /** Context size (`-c`); engine default when absent. */
  ctx_size: z.int().positive().optional(),
  /** Layers offloaded to the GPU (`-ngl`); engine default when absent. */
  n_gpu_layers: z.int().min(-1).optional(),
  /** Concurrent sequences in one server (slots). */
  parallel: z.int().min(1).default(1),
  /** CPU threads; 0 = engine default. */
  threads: z.int().min(0).default(0),
  /** Extra arguments for this model only. */
  args: z.array(z.string()).default([]),
  /** May it be served by several nodes over RPC (SPEC §12): `auto` only when no node has room. */
  split: z.enum(SPLIT_MODES).default("auto"),
  /** Most nodes serving it together, the host included. */
  split_max_nodes: z.int().min(1).default(4),
});

export const BACKENDS = ["auto", "cuda", "rocm", "metal", "vulkan", "sycl", "cpu"] as const;
export const ENGINES = ["auto", "llama-server", "embedded"] as const;

/** Node agent configuration (SPEC §2). */
export const AgentConfigSchema = z
  .strictObject({
    node_id: z
      .string()
      .regex(NODE_ID_PATTERN, "letters, digits, . _ and - only, at most 64")
      .or(z.literal(""))
      .default(""),
    state_dir: z.string().min(1).default("~/.rolemesh"),
    listen_host: z.string().min(1).default("127.0.0.1"),
    listen_port: z.int().min(0).max(65535).default(8090),
    auth_token: secretKey("auth_token"),
    /** Start on a non-loopback address without `auth_token` (SPEC §2.2). */
    allow_insecure: z.boolean().default(false),
    dispatcher_base_url: z.string().default(""),
    ...NATS_CONFIG_KEYS,
    /** Where the gateway reaches this agent; empty = derived from listen_host and the port. */
    advertise_url: z.string().default(""),
    /** Host name reported to the gateway; empty = the machine's. */
    hostname: z.string().default(""),
    join_token: secretKey("join_token"),
    heartbeat_interval_s: seconds(5),
    labels: z.record(z.string(), z.string()).default({}),
    backend: z.enum(BACKENDS).default("auto"),
    /** How often devices are measured (they are also measured before each placement). */
    metrics_interval_s: seconds(5),
    devices: z
      .array(z.string().regex(/^(gpu|cpu):\d+$/, 'a device id such as "gpu:0" or "cpu:0"'))
      .default([]),
    engine: z.enum(ENGINES).default("auto"),
    llama_server_bin: z.string().min(1).default("llama-server"),
    llama_server_args: z.array(z.string()).default([]),
    /** llama.cpp's `rpc-server` for split inference; the default name is found like llama-server. */
    rpc_server_bin: z.string().min(1).default("rpc-server"),
    /** rpc-server keeps tensors it received in a local file cache (`-c`): a re-formed group loads faster. */
    rpc_cache: z.boolean().default(false),
    /** The agents' tunnel for split inference, on `listen_host`; 0 = any free port. */
    tunnel_port: z.int().min(0).max(65535).default(8091),
    llama_server_startup_timeout_s: seconds(30),
    llama_server_startup_timeout_per_gib_s: z.number().min(0).default(0),
    llama_server_probe_interval_s: seconds(0.5),
    /** A server still loading after this long is killed as hung; 0 = 10 x its startup timeout. */
    llama_server_load_ceiling_s: z.number().min(0).default(0),
    max_pending_requests_per_device: z.int().min(1).default(2),
    shutdown_grace_s: z.number().min(0).default(30),
    /** Longest a request may take from reaching its server to its last byte (502 after). */
    request_timeout_s: seconds(600),
    /** Largest request body accepted, in MiB (SPEC §7: 413 beyond it). */
    max_body_mb: z.number().positive().default(8),
    /** Largest model file an install downloads, in GiB; 0 = as much as the disk has free. */
    max_download_gb: z.number().min(0).default(0),
    /**
     * Puts the machine to sleep on `node.sleep` (SPEC §11, a wakeable entry's `sleep: node`),
     * e.g. `["systemctl", "suspend"]`: argv run without a shell, `ROLEMESH_NODE_ID` in its env.
     * Empty = the node cannot be put to sleep.
     */
    sleep_command: z.array(z.string().min(1)).default([]),
    /** pino level: fatal, error, warn, info, debug, trace. */
    log_level: z
      .enum(["fatal", "error", "warn", "info", "debug", "trace", "silent"])
      .default("info"),
    models: z.array(ModelEntrySchema).default([]),
  })
  .superRefine((config, ctx) => {
    checkUnique(config.models, "models", "model_id", ctx);
    checkNoBindArgs(config.llama_server_args, ["llama_server_args"], ctx);
    config.models.forEach((model, i) => checkNoBindArgs(model.args, ["models", i, "args"], ctx));
    checkBinding(
      {
        ...config,
        secretKey: "auth_token",
        secret: config.auth_token,
        envVariable: SECRET_ENV.auth_token,
        risk: "anyone who can reach it could run models and read prompts",
      },
      ctx,
    );
    checkNatsCredentials(config, ctx);
  });

/** Options that would move a managed server off the loopback address and port the agent picks. */
const BIND_OPTIONS = ["--host", "--port"];

/**
 * Managed servers always listen on 127.0.0.1 on a port the agent picks (SPEC §2.2); llama-server
 * takes the last `--host`/`--port` it is given, so extra arguments must not carry them.
 */
function checkNoBindArgs(
  args: readonly string[],
  path: (string | number)[],
  ctx: z.RefinementCtx,
): void {
  args.forEach((arg, i) => {
    const option = BIND_OPTIONS.find((name) => arg === name || arg.startsWith(`${name}=`));
    if (!option) return;
    ctx.addIssue({
      code: "custom",
      path: [...path, i],
      message: `${option} is not allowed: managed servers always listen on 127.0.0.1 on a port the agent picks`,
    });
  });
}

export type AgentConfig = z.output<typeof AgentConfigSchema>;
export type ModelEntry = z.output<typeof ModelEntrySchema>;
