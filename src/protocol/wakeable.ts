/**
 * Wakeable capacity (SPEC §11): machines that are not live but can be woken. Shown apart from
 * live peers; never routed to while asleep.
 */

export type WakeableState = "sleeping" | "waking" | "awake" | "failed";

/** How an entry is woken; the action's details (argv, URL, headers, MAC) stay on the gateway. */
export type WakeActionKind = "command" | "webhook" | "wol";

/** A wakeable entry as `/api/status` and `/api/wakeable` show it. */
export interface WakeableStatus {
  id: string;
  /** Who runs the machine, e.g. `aws`, `proxmox`, `wol`. */
  provider: string;
  description: string;
  vram_mb: number;
  /** Model ids or roles it would serve once awake. */
  models: string[];
  /** `awake` while the node it becomes (`node_id`) is registered. */
  state: WakeableState;
  /** The node id the machine registers with when awake, if known. */
  node_id: string | null;
  wake_action: WakeActionKind | null;
  /** When the current state began (ISO 8601), when the gateway knows. */
  since: string | null;
  /** Why the last wake failed, while `failed`. */
  reason: string | null;
  /** How long the last wake took, in seconds: the expected duration of the next. */
  last_wake_s: number | null;
  /** While `waking`, the seconds still expected (from the last wake's duration), if known. */
  eta_s: number | null;
  /** Idle seconds after which the node is put to sleep; 0 = never. */
  sleep_after_idle_s: number;
}

/** `POST /api/wakeable/<id>/wake` (admin): the entry as the wake left it (202). */
export interface WakeAnswer {
  wakeable: WakeableStatus;
}

/** `node.wol`: the magic packet an awake agent sends on its LAN for a sleeping machine. */
export interface WakeOnLanArgs {
  /** The sleeping machine's MAC address, `aa:bb:cc:dd:ee:ff` (or with `-`). */
  mac: string;
  /** Where the packet goes: the LAN's broadcast address by default. */
  address: string;
  /** UDP port: 9 by default (7 is the other usual one). */
  port: number;
}
