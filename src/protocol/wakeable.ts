/**
 * Wakeable capacity (SPEC §11): machines that are not live but can be woken. Shown apart from
 * live peers; never routed to.
 */

export type WakeableState = "sleeping" | "waking" | "awake" | "failed";

/** A wakeable entry as `/api/status` shows it: the wake action's details stay on the gateway. */
export interface WakeableStatus {
  id: string;
  /** Who runs the machine, e.g. `aws`, `proxmox`, `wol`. */
  provider: string;
  description: string;
  vram_mb: number;
  /** Model ids or roles it would serve once awake. */
  models: string[];
  /** `awake` once the node it becomes (`node_id`) is registered. */
  state: WakeableState;
  /** The node id the machine registers with when awake, if known. */
  node_id: string | null;
  wake_action: "command" | "webhook" | null;
}
