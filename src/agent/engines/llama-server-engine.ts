import type { DeviceRef } from "../../protocol/inventory.js";
import type { ModelEntry } from "../config/agent-config.js";
import { expandHome } from "../../core/paths.js";
import { readGgufHeader } from "../models/gguf.js";
import type { Engine, LaunchSpec } from "./engine.js";
import { llamaServerReadiness } from "./llama-server-readiness.js";

export interface LlamaServerOptions {
  /** Resolved path of the llama-server binary. */
  bin: string;
  /** `llama_server_args`: extra arguments for every managed server. */
  extraArgs: readonly string[];
}

/**
 * llama.cpp's `llama-server`, started as SPEC §6 says. `--alias` makes the server report the
 * model id, so readiness can tell our server from anything else that took the port.
 */
export class LlamaServerEngine implements Engine {
  readonly name = "llama-server" as const;
  readonly readiness = llamaServerReadiness;

  constructor(readonly options: LlamaServerOptions) {}

  async launch(model: ModelEntry, port: number, device: DeviceRef): Promise<LaunchSpec> {
    const args = [
      ...llamaServerArgs(model, port, device),
      ...this.options.extraArgs,
      ...model.args,
    ];
    if (await needsMeanPooling(args, model.path)) args.push("--pooling", "mean");
    return { command: this.options.bin, args, env: {} };
  }
}

/**
 * llama-server refuses OpenAI embeddings with pooling `none` ("not OAI compatible"), and `none`
 * is what a model gets whose GGUF sets no `<arch>.pooling_type` (any generative model). Such an
 * embedding server is started with mean pooling, unless its arguments choose a pooling.
 */
export async function needsMeanPooling(
  args: readonly string[],
  modelPath: string,
): Promise<boolean> {
  if (!args.some((arg) => arg === "--embedding" || arg === "--embeddings")) return false;
  if (args.some((arg) => arg === "--pooling" || arg.startsWith("--pooling="))) return false;
  const header = await readGgufHeader(expandHome(modelPath)).catch(() => null);
  const architecture = header?.metadata.get("general.architecture");
  const pooling =
    typeof architecture === "string"
      ? header?.metadata.get(`${architecture}.pooling_type`)
      : undefined;
  // 0 is LLAMA_POOLING_TYPE_NONE.
  return pooling === undefined || Number(pooling) === 0;
}

/**
 * The llama-server command line for a model, without extra arguments. The embedded engine
 * understands the same options, so both engines are started the same way.
 */
export function llamaServerArgs(model: ModelEntry, port: number, device: DeviceRef): string[] {
  const args = ["-m", expandHome(model.path), "--host", "127.0.0.1", "--port", String(port)];
  args.push("--alias", model.model_id);
  if (model.ctx_size !== undefined) args.push("-c", String(model.ctx_size));
  // On the CPU device nothing is offloaded, whatever the build could do.
  const gpuLayers = model.n_gpu_layers ?? (device.backend === "cpu" ? 0 : undefined);
  if (gpuLayers !== undefined) args.push("-ngl", String(gpuLayers));
  args.push("--parallel", String(model.parallel));
  if (model.threads > 0) args.push("-t", String(model.threads));
  return args;
}
