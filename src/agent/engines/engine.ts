import type { DeviceRef } from "../../protocol/inventory.js";
import type { ModelEntry } from "../agent-config.js";
import type { LaunchSpec } from "../supervisor/server-process.js";

/**
 * The program a persistent server runs (SPEC §6). Every engine serves the same HTTP subset as
 * llama-server on a loopback port, so one supervisor manages them all.
 */
export interface Engine {
  readonly name: "llama-server" | "embedded";
  /** The command that serves `model` on 127.0.0.1:`port` from `device`. */
  launch(model: ModelEntry, port: number, device: DeviceRef): Promise<LaunchSpec>;
}
