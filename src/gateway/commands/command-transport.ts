import { ApiClient } from "../../core/http/api-client.js";
import type { OperationStatus } from "../../protocol/operations.js";
import { AGENT_PATHS, fillPath } from "../../protocol/paths.js";
import type { NodeRecord } from "../registry/node-registry.js";

/** One command to a node: which it is, and the request of the agent's node API it stands for. */
export interface CommandRequest {
  /** A SPEC §10 command name, or `operation.status`. */
  command: string;
  method: "GET" | "POST" | "DELETE";
  path: string;
  body?: unknown;
  /** How long to wait for the answer (SPEC §10 timeouts). */
  timeoutMs?: number;
}

/**
 * How the gateway reaches one node's command API: HTTP to the agent, or request-reply over
 * NATS (SPEC §8, §10). Nothing above it changes with the transport.
 */
export interface CommandTransport {
  /** The node's answer: its status and JSON body; an error answer is thrown as RoleMeshError. */
  call<T = unknown>(
    node: NodeRecord,
    request: CommandRequest,
  ): Promise<{ status: number; body: T }>;
  /** Hands every status of an operation to `onStatus`, from now until it is done. */
  followOperation(
    node: NodeRecord,
    opId: string,
    onStatus: (status: OperationStatus) => void,
    signal?: AbortSignal,
  ): Promise<void>;
}

/** Commands over HTTP to the agent, with the token the agent registered with. */
export class HttpCommandTransport implements CommandTransport {
  call<T>(node: NodeRecord, request: CommandRequest) {
    return client(node).call<T>(request.method, request.path, {
      ...(request.body !== undefined ? { body: request.body } : {}),
      ...(request.timeoutMs !== undefined ? { timeoutMs: request.timeoutMs } : {}),
    });
  }

  followOperation(
    node: NodeRecord,
    opId: string,
    onStatus: (status: OperationStatus) => void,
    signal?: AbortSignal,
  ) {
    return client(node).events(
      operationPath(opId),
      (event) => onStatus(event as OperationStatus),
      signal,
    );
  }
}

export const operationPath = (opId: string) => fillPath(AGENT_PATHS.operation, { op_id: opId });

const client = (node: NodeRecord) => new ApiClient(node.agentUrl, node.authToken);
