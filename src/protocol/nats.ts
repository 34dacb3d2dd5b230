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

/** Where a node answers `command` (a SPEC §10 name, or `operation.status`) by request-reply. */
export const nodeCommandSubject = (nodeId: string, command: string) =>
  `rolemesh.node.${nodeId}.${command}`;

/** Every command subject of a node, for the node to subscribe to. */
export const nodeCommandsOf = (nodeId: string) => `rolemesh.node.${nodeId}.>`;

/** Every status change of an operation, published by the node that runs it. */
export const operationProgressSubject = (opId: string) => `rolemesh.op.${opId}.progress`;

/** What may be asked of an operation by its id alone: its status, or that it stop. */
export type OperationRequest = "status" | "cancel";

/**
 * Where the node that runs an operation answers for it while it is readable, so a gateway
 * reaches it knowing only the `op_id` — any gateway, after the one that started it has died —
 * and "no responders" means no live node has it.
 */
export const operationSubject = (opId: string, request: OperationRequest) =>
  `rolemesh.op.${opId}.${request}`;

/** A command's request: the request of the node API it stands for (SPEC §7.1). */
export interface NatsCommandRequest {
  method: "GET" | "POST" | "DELETE";
  /** A path of the node API, under `/v1/node/`. */
  path: string;
  body?: unknown;
}

/** A command's answer: the node API's status and JSON body (an OpenAI-shaped error at ≥ 400). */
export interface NatsCommandAnswer {
  status: number;
  body: unknown;
}

/** A node's inboxes (its replies from JetStream), so NATS permissions can keep them its own. */
export const nodeInboxPrefix = (nodeId: string) => `_INBOX.${nodeId}`;
