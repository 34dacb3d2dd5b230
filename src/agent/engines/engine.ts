import type { Pool } from "undici";
import type { ProcessSpec } from "../../core/process/managed-process.js";
import type { DeviceRef } from "../../protocol/inventory.js";
import type { ModelEntry } from "../config/agent-config.js";

/** How to start one inference server: the command, its arguments, and its pinning. */
export type LaunchSpec = ProcessSpec;

/** A readiness probe's verdict. */
export interface ProbeAnswer {
  ready: boolean;
  /** Models a healthy server reports when the expected one is not among them. */
  otherModels?: string[];
}

/**
 * How an engine's server tells it is ready (SPEC §4), so that the supervisor needs no
 * knowledge of any one engine.
 */
export interface Readiness {
  /** Asks the server on `pool` whether it serves `model` now. Never throws. */
  probe(pool: Pool, model: ModelEntry): Promise<ProbeAnswer>;
  /** The build the server reports, once ready; null when it says none. */
  buildInfo(pool: Pool): Promise<string | null>;
  /** A log line saying the server is up: probe now instead of at the next interval. */
  readyLine: RegExp;
  /** A log line saying another process took the port: start again on another, not a crash. */
  portConflictLine: RegExp;
}

/**
 * The program a persistent server runs (SPEC §6). Every engine serves an HTTP API on a
 * loopback port and says how to tell it is ready, so one supervisor manages them all.
 */
export interface Engine {
  readonly name: "llama-server" | "embedded";
  /** The command that serves `model` on 127.0.0.1:`port` from `device`. */
  launch(model: ModelEntry, port: number, device: DeviceRef): Promise<LaunchSpec>;
  readonly readiness: Readiness;
}
