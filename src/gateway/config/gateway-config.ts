import { z } from "zod";
import { checkBinding } from "../../core/config/binding-check.js";
import { checkUnique } from "../../core/config/unique-check.js";
import { SECRET_ENV, secretKey } from "../../core/config/secret-env.js";
import {
  checkNatsCredentials,
  NATS_CONFIG_KEYS,
  natsServers,
} from "../../core/nats/nats-config.js";
import { LEASE_HEARTBEATS } from "../../protocol/registry.js";
import { PROCESSING_INTERVAL_MS } from "../../protocol/processing.js";
import { WakeableEntrySchema } from "../wakeable/wakeable-entries.js";

/** Three missed progress reports: one late report is not a frozen node. */
const MIN_FIRST_BYTE_TIMEOUT_S = (3 * PROCESSING_INTERVAL_MS) / 1000;

/** A static client key from the config (SPEC §2.1 `api_keys`). */
export const StaticKeySchema = z.strictObject({
  name: z.string().min(1),
  key: z.string().min(16, "use at least 16 characters"),
  /** Model ids or roles this key may use; `*` for all. */
  models: z.array(z.string().min(1)).default(["*"]),
  /** 0 = unlimited. */
  requests_per_minute: z.int().min(0).default(0),
});

/** Gateway configuration (SPEC §2.1). */
export const GatewayConfigSchema = z
  .strictObject({
    listen_host: z.string().min(1).default("127.0.0.1"),
    listen_port: z.int().min(0).max(65535).default(8080),
    state_dir: z.string().min(1).default("~/.rolemesh-gateway"),
    join_token: secretKey("join_token"),
    admin_key: secretKey("admin_key"),
    api_keys: z.array(StaticKeySchema).default([]),
    heartbeat_interval_s: z.number().positive().default(5),
    /** 0 = 3 x heartbeat_interval_s. */
    lease_s: z.number().min(0).default(0),
    max_attempts: z.int().min(1).default(3),
    request_timeout_s: z.number().positive().default(600),
    /** On SIGTERM, how long admitted requests (streams included) may go on before they are cut. */
    shutdown_grace_s: z.number().min(0).default(30),
    /**
     * A node that sends nothing for this long before its answer starts is taken for frozen and
     * the request tried on another. Agents report progress while a request waits, so a slow
     * cold load or a long answer never reaches it. 0 = no limit.
     */
    first_byte_timeout_s: z
      .number()
      .refine(
        (s) => s === 0 || s >= MIN_FIRST_BYTE_TIMEOUT_S,
        `0 (no limit) or at least ${MIN_FIRST_BYTE_TIMEOUT_S} s: agents report progress every ${PROCESSING_INTERVAL_MS / 1000} s`,
      )
      .default(30),
    ...NATS_CONFIG_KEYS,
    /**
     * How a request picks among the nodes that serve it (SPEC §13): by its prompt prefix, so a
     * conversation returns to the node whose prompt cache holds it, or the least loaded.
     */
    routing: z.enum(["prefix_affinity", "least_load"]).default("prefix_affinity"),
    /** Under prefix affinity no node takes more than this × the mean load; then keys spill. */
    affinity_load_factor: z.number().min(1).default(1.25),
    /** Capacity that can be woken (SPEC §11); shown apart, never routed to while asleep. */
    wakeable: z.array(WakeableEntrySchema).default([]),
    /** A request that only a sleeping wakeable entry would serve wakes it and waits for it. */
    wake_on_demand: z.boolean().default(false),
    /** How long such a request is held before 503 `waking`. */
    wake_max_wait_s: z.number().positive().default(120),
    /** Requests held at once; more are answered 503 `waking` at once. */
    wake_max_held: z.int().positive().default(100),
    /** A woken entry's node must register within this, or the wake fails. */
    wake_timeout_s: z.number().positive().default(300),
    /** After a failed wake, requests get its reason for this long before one wakes it again. */
    wake_cooldown_s: z.number().min(0).default(30),
    /** Start on a non-loopback address without `join_token` (SPEC §2.2). */
    allow_insecure: z.boolean().default(false),
    /** Accept agents that register a public IP address other than their own (behind NAT, say). */
    allow_public_agent_urls: z.boolean().default(false),
    /** Largest request body accepted, in MiB. */
    max_body_mb: z.number().positive().default(8),
    /** Largest register or heartbeat body accepted, in KiB: a descriptor, not a prompt. */
    max_descriptor_kb: z.int().positive().default(256),
    /** Live nodes the registry holds; a registration beyond them is refused (409). */
    max_nodes: z.int().positive().default(1000),
    /**
     * The shortest average gap between one node's register and heartbeat messages, after a
     * burst (at most half of `heartbeat_interval_s`); faster ones get 429. 0: no limit.
     */
    heartbeat_min_interval_s: z.number().min(0).default(1),
    /** Concurrent `/api/events` streams; one more gets 503 with Retry-After. */
    max_event_clients: z.int().positive().default(64),
    log_level: z
      .enum(["fatal", "error", "warn", "info", "debug", "trace", "silent"])
      .default("info"),
  })
  .superRefine((config, ctx) => {
    // Over NATS agents register there, protected by NATS credentials, not the join token.
    if (natsServers(config).length === 0) {
      checkBinding(
        {
          ...config,
          secretKey: "join_token",
          secret: config.join_token,
          envVariable: SECRET_ENV.join_token,
          risk: "anyone could register a node and receive users' prompts",
        },
        ctx,
      );
    }
    checkNatsCredentials(config, ctx);
    checkUnique(config.api_keys, "api_keys", "name", ctx);
    checkUnique(config.wakeable, "wakeable", "id", ctx);
  });

export type GatewayConfig = z.output<typeof GatewayConfigSchema>;

/**
 * The shortest average gap between one node's registry messages: `heartbeat_min_interval_s`,
 * but never more than half the heartbeat interval, so a node that keeps to its interval (and
 * sends a nudge in between) is never refused. 0 = no limit.
 */
export function minMessageIntervalS(config: GatewayConfig): number {
  return Math.min(config.heartbeat_min_interval_s, config.heartbeat_interval_s / 2);
}

/** The lease after which a silent node leaves routing: `lease_s`, or three heartbeat intervals. */
export function leaseSeconds(config: GatewayConfig): number {
  return config.lease_s > 0 ? config.lease_s : LEASE_HEARTBEATS * config.heartbeat_interval_s;
}
