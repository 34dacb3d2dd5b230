import type { DeviceRef } from "../../protocol/inventory.js";
import type { ModelEntry } from "../agent-config.js";
import type { LaunchSpec } from "../supervisor/server-process.js";
import type { Engine } from "./engine.js";
import { llamaServerArgs } from "./llama-server-engine.js";

// The server runs from the same tree as the agent: compiled JavaScript, or TypeScript through
// tsx when the agent itself runs from source.
const FROM_SOURCE = import.meta.url.endsWith(".ts");
const SERVER_ENTRY = new URL(
  `./embedded/embedded-server.${FROM_SOURCE ? "ts" : "js"}`,
  import.meta.url,
);

/**
 * This package's own server process on node-llama-cpp (SPEC §6). It takes llama-server's
 * options, so the supervisor starts, probes and stops it exactly like llama-server.
 */
export class EmbeddedEngine implements Engine {
  readonly name = "embedded" as const;

  async launch(model: ModelEntry, port: number, device: DeviceRef): Promise<LaunchSpec> {
    const loader = FROM_SOURCE ? ["--import", import.meta.resolve("tsx")] : [];
    return {
      command: process.execPath,
      args: [
        ...loader,
        SERVER_ENTRY.pathname,
        ...llamaServerArgs(model, port, device),
        ...model.args,
      ],
      env: {},
    };
  }
}
