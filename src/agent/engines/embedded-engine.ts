import { fileURLToPath } from "node:url";
import type { DeviceRef } from "../../protocol/inventory.js";
import type { ModelEntry } from "../config/agent-config.js";
import type { Engine, LaunchSpec } from "./engine.js";
import { llamaServerReadiness } from "./llama-server-readiness.js";
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
  // It answers llama-server's endpoints and logs, so it is ready the same way.
  readonly readiness = llamaServerReadiness;

  async launch(model: ModelEntry, port: number, device: DeviceRef): Promise<LaunchSpec> {
    const loader = FROM_SOURCE ? ["--import", import.meta.resolve("tsx")] : [];
    return {
      command: process.execPath,
      args: [
        ...loader,
        fileURLToPath(SERVER_ENTRY),
        ...llamaServerArgs(model, port, device),
        ...model.args,
      ],
      env: {},
    };
  }
}
