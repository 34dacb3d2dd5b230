/**
 * Wire types between agents and gateways (SPEC §7.2, §7.4). snake_case: public JSON.
 */
import type { DeviceInventory, HostCapabilities, LiveState, ModelInventory } from "./inventory.js";
import type { SplitGroupInfo, TunnelEndpoint } from "./split.js";
import type { WakeableStatus } from "./wakeable.js";

/**
 * What a node id may be made of: it travels in HTTP headers (`x-rolemesh-node`, Latin-1 only),
 * NATS subjects and file names, so letters, digits, `.`, `_` and `-`, 1 to 64 of them.
 */
export const NODE_ID_PATTERN = /^[A-Za-z0-9._-]{1,64}$/;

/** What changes from one heartbeat to the next. */
export interface NodeSnapshot {
  state: LiveState;
  /** Refusing new requests while admitted ones finish; optional for older agents. */
  draining?: boolean;
  devices: DeviceInventory[];
  models: ModelInventory[];
  /** Split groups it takes part in (SPEC §12); optional for older agents. */
  split_groups?: SplitGroupInfo[];
}

/**
 * Orders an agent's messages: `started_at` tells agent processes apart (a restarted agent
 * starts over), `sequence` counts within one. A message that is not newer than what the
 * gateway holds is ignored, so a late or replayed one never revives or rolls back a record.
 */
export interface MessageOrder {
  started_at: number;
  sequence: number;
}

/**
 * The secret that binds a node id to its agent: issued by the gateway at the first
 * registration (`RegisterResponse.node_secret`), kept in the agent's state dir and presented
 * with every later message. A message for a live node id with another secret is refused with
 * 409 `conflict`.
 */
export interface NodeCredential {
  node_secret?: string;
}

export interface RegisterRequest extends MessageOrder, NodeCredential {
  node_id: string;
  hostname: string;
  /** Where the gateway reaches the agent's API. */
  agent_url: string;
  version: string;
  capabilities: HostCapabilities;
  labels: Record<string, string>;
  /** The agent's bearer token, presented by the gateway on every call it makes to it. */
  auth_token?: string;
  /** Its tunnel for split inference, when it can take part in one (SPEC §12). */
  tunnel?: TunnelEndpoint;
  snapshot: NodeSnapshot;
}

export interface RegisterResponse {
  node_id: string;
  /** The node's secret, to keep and present from now on. */
  node_secret: string;
  heartbeat_interval_s: number;
  lease_s: number;
}

export interface HeartbeatRequest extends MessageOrder, NodeCredential {
  node_id: string;
  snapshot: NodeSnapshot;
}

export interface DeregisterRequest extends MessageOrder, NodeCredential {
  node_id: string;
}

/** A live node as `/api/status` shows it; never carries the agent's token. */
export interface PeerStatus {
  node_id: string;
  hostname: string;
  agent_url: string;
  version: string;
  labels: Record<string, string>;
  state: LiveState;
  draining: boolean;
  capabilities: HostCapabilities;
  devices: DeviceInventory[];
  models: ModelInventory[];
  /** The split groups it takes part in (SPEC §12). */
  split_groups: SplitGroupInfo[];
  /** Its tunnel for split inference, if it can take part in one. */
  tunnel?: TunnelEndpoint;
  registered_at: string;
  last_seen: string;
  /** Requests the gateway has in flight to this node. */
  gateway_in_flight: number;
}

/** A lease of this many heartbeat intervals, unless configured: two heartbeats may be missed. */
export const LEASE_HEARTBEATS = 3;

/** A gateway of the fleet, as `/api/status` lists it (SPEC §8). */
export interface GatewayStatus {
  id: string;
  url: string;
  version: string;
  last_seen: string;
}

export interface StatusResponse {
  gateway: { id: string; version: string; url: string; started_at: string };
  /** Every gateway sharing this one's NATS, this one first; only this one without NATS. */
  gateways: GatewayStatus[];
  node_state: LiveState;
  /** `node_state` in Title Case, kept for older consumers. */
  node_status: string;
  peers: PeerStatus[];
  /** Capacity that can be woken (SPEC §11); never in `peers` or routing. */
  wakeable: WakeableStatus[];
}

/** One message of `GET /api/events`. */
export type RegistryEvent =
  | { type: "status"; status: StatusResponse }
  | { type: "node_registered" | "node_updated"; node: PeerStatus }
  | { type: "node_removed"; node_id: string; reason: string }
  | { type: "wakeable"; wakeable: WakeableStatus[] }
  /** A gateway joined or left the fleet's NATS (SPEC §8). */
  | { type: "gateways"; gateways: GatewayStatus[] }
  /** The gateway's own process changed state (`rolemesh up`: its local agent). */
  | { type: "gateway_state"; node_state: LiveState };
