import { ApiClient } from "../../core/http/api-client.js";
import { RoleMeshError } from "../../core/errors.js";
import type { OperationRequest } from "../../protocol/nats.js";
import type { OperationStatus } from "../../protocol/operations.js";
import { AGENT_PATHS, fillPath } from "../../protocol/paths.js";
import type { NodeRecord, NodeRegistry } from "../registry/node-registry.js";

/** One command to a node: which it is, and the request of the agent's node API it stands for. */
export interface CommandRequest {
  /** A SPEC §10 command name. */
  command: string;
  method: "GET" | "POST" | "DELETE";
  path: string;
  body?: unknown;
  /** How long to wait for the answer (SPEC §10 timeouts). */
  timeoutMs?: number;
}

/** A node's answer: its status and JSON body. */
export interface CommandAnswer<T = unknown> {
  status: number;
  body: T;
}

/**
 * How the gateway reaches nodes' command API: HTTP to the agent, or request-reply over NATS
 * (SPEC §8, §10). Nothing above it changes with the transport. Operations are reached by their
 * `op_id` alone: the transport finds the node that runs one.
 */
export interface CommandTransport {
  /** The node's answer; an error answer is thrown as RoleMeshError. */
  call<T = unknown>(node: NodeRecord, request: CommandRequest): Promise<CommandAnswer<T>>;
  /** An operation's status, or its cancellation (`DELETE` on it), from the node that runs it. */
  operation(opId: string, request: OperationRequest): Promise<CommandAnswer<OperationStatus>>;
  /** Hands every status of an operation to `onStatus`, from now until it is done. */
  followOperation(
    opId: string,
    onStatus: (status: OperationStatus) => void,
    signal?: AbortSignal,
  ): Promise<void>;
}

/** Far more than a fleet runs at once (installs, upgrades); each costs two short strings. */
export const REMEMBERED_OPERATIONS = 1_000;

/** How long each node may take to say whether it runs an operation nobody remembers. */
const LOCATE_TIMEOUT_MS = 10_000;

/**
 * Commands over HTTP to the agent, with the token the agent registered with. It remembers which
 * node answered each recent `op_id`; one it has forgotten (or one started through another
 * gateway before a restart) is found by asking the live nodes.
 */
export class HttpCommandTransport implements CommandTransport {
  readonly #registry: NodeRegistry;
  /** Which node runs each recent operation, oldest first. */
  readonly #operationNode = new Map<string, string>();

  constructor(registry: NodeRegistry) {
    this.#registry = registry;
  }

  async call<T>(node: NodeRecord, request: CommandRequest): Promise<CommandAnswer<T>> {
    const answer = await client(node).call<T>(request.method, request.path, {
      ...(request.body !== undefined ? { body: request.body } : {}),
      ...(request.timeoutMs !== undefined ? { timeoutMs: request.timeoutMs } : {}),
    });
    const opId = (answer.body as { op_id?: unknown } | null)?.op_id;
    if (typeof opId === "string") this.#remember(opId, node.nodeId);
    return answer;
  }

  async operation(opId: string, request: OperationRequest) {
    const node = await this.#locate(opId);
    const method = request === "status" ? "GET" : "DELETE";
    return client(node).call<OperationStatus>(method, operationPath(opId));
  }

  async followOperation(
    opId: string,
    onStatus: (status: OperationStatus) => void,
    signal?: AbortSignal,
  ) {
    const node = await this.#locate(opId);
    return client(node).events(
      operationPath(opId),
      (event) => onStatus(event as OperationStatus),
      signal,
    );
  }

  #remember(opId: string, nodeId: string): void {
    this.#operationNode.delete(opId);
    this.#operationNode.set(opId, nodeId);
    if (this.#operationNode.size > REMEMBERED_OPERATIONS) {
      this.#operationNode.delete(this.#operationNode.keys().next().value!);
    }
  }

  /** The node of an operation: remembered, else asked of every live node. */
  async #locate(opId: string): Promise<NodeRecord> {
    const known = this.#operationNode.get(opId);
    const node = known ? this.#registry.get(known) : undefined;
    if (node) return node;
    for (const candidate of this.#registry.live()) {
      try {
        await client(candidate).call("GET", operationPath(opId), { timeoutMs: LOCATE_TIMEOUT_MS });
        this.#remember(opId, candidate.nodeId);
        return candidate;
      } catch {
        // not this node's
      }
    }
    throw new RoleMeshError("not_found", `no live node knows operation "${opId}"`);
  }
}

export const operationPath = (opId: string) => fillPath(AGENT_PATHS.operation, { op_id: opId });

const client = (node: NodeRecord) => new ApiClient(node.agentUrl, node.authToken);
