/**
 * The names RoleMesh uses on NATS (SPEC §8): the same on every agent and gateway, so a fleet
 * of mixed processes agrees on them.
 */

/** JetStream KV bucket with one key per live node (its descriptor), entries expiring with the lease. */
export const NODES_BUCKET = "rolemesh_nodes";

/** JetStream KV bucket with the state every gateway shares: client keys, wakeable entries, operations. */
export const STATE_BUCKET = "rolemesh_state";

/** Each gateway announces itself here every heartbeat interval. */
export const gatewayHeartbeatSubject = (gatewayId: string) =>
  `rolemesh.gateway.${gatewayId}.heartbeat`;

/** Every gateway's announcements, for a gateway to list its peers. */
export const GATEWAY_HEARTBEATS = "rolemesh.gateway.*.heartbeat";

/** A gateway's announcement of itself. */
export interface GatewayHeartbeat {
  id: string;
  /** Where its HTTP API is reached. */
  url: string;
  version: string;
  started_at: string;
}
