import { ApiClient } from "../../core/http/api-client.js";
import type { ApiCallOptions } from "../../core/http/api-client.js";
import type { NodeRecord } from "../registry/node-registry.js";

/**
 * How the gateway reaches one node's command API. HTTP to the agent today; a NATS transport
 * (SPEC §8) implements the same two calls, and nothing above it changes.
 */
export interface CommandTransport {
  /** One request to the node's admin API; the answer's status and JSON body. */
  call<T = unknown>(
    node: NodeRecord,
    method: "GET" | "POST" | "DELETE",
    path: string,
    options?: ApiCallOptions,
  ): Promise<{ status: number; body: T }>;
  /** Follows an event stream of the node (an operation's progress) until it ends. */
  events(
    node: NodeRecord,
    path: string,
    onEvent: (event: unknown) => void,
    signal?: AbortSignal,
  ): Promise<void>;
}

/** Commands over HTTP to the agent, with the token the agent registered with. */
export class HttpCommandTransport implements CommandTransport {
  call<T>(
    node: NodeRecord,
    method: "GET" | "POST" | "DELETE",
    path: string,
    options?: ApiCallOptions,
  ) {
    return client(node).call<T>(method, path, options);
  }

  events(node: NodeRecord, path: string, onEvent: (event: unknown) => void, signal?: AbortSignal) {
    return client(node).events(path, onEvent, signal);
  }
}

const client = (node: NodeRecord) => new ApiClient(node.agentUrl, node.authToken);
