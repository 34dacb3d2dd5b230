/**
 * Node commands (SPEC §10): their names, and the answers of the agent's node API that are not
 * operations (see operations.ts) or the inventory (see inventory.ts).
 */
import type { ServerInfo } from "./inventory.js";

/** Every command a gateway can send to a node. */
export const NODE_COMMAND_NAMES = [
  "backend.install",
  "backend.upgrade",
  "backend.list",
  "backend.stop",
  "backend.delete",
  "model.install",
  "model.load",
  "model.unload",
  "model.delete",
  "node.drain",
  "node.resume",
  "node.stop",
  "node.sleep",
  "node.wol",
  "split.worker",
  "split.host",
  "split.leave",
] as const;
export type NodeCommandName = (typeof NODE_COMMAND_NAMES)[number];

/** `model.load`: the model is ready on this device. */
export interface LoadResult {
  model_id: string;
  device: string;
  server: ServerInfo;
}

/** `model.unload`: the devices it was stopped on. */
export interface UnloadResult {
  model_id: string;
  unloaded_from: string[];
}

/** `node.drain` / `node.resume`: whether the node takes requests, and what it still has. */
export interface DrainState {
  node_id: string;
  draining: boolean;
  in_flight: number;
  pending: number;
}

/** One server of a node as `backend.list` shows it. */
export interface BackendServer extends ServerInfo {
  device: string;
  /** Where the agent reaches it, while it runs. */
  address: string | null;
}

/** `backend.list`. */
export interface BackendList {
  node_id: string;
  engine: string;
  backends: BackendServer[];
}
