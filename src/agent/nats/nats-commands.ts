import type { NatsConnection, Msg, Subscription } from "@nats-io/transport-node";
import { RoleMeshError, toRoleMeshError } from "../../core/errors.js";
import { ApiClient } from "../../core/http/api-client.js";
import type { Logger } from "../../core/logger.js";
import { nodeCommandsOf, operationProgressSubject, operationSubject } from "../../protocol/nats.js";
import type { NatsCommandAnswer, NatsCommandRequest } from "../../protocol/nats.js";
import { AGENT_PATHS, fillPath } from "../../protocol/paths.js";
import type { Operation, Operations } from "../operations/operations.js";

/** The node API, the only part of the agent a command may reach. */
const NODE_API = "/v1/node/";
const METHODS = new Set(["GET", "POST", "DELETE"]);

/** What the command server needs of the agent. */
export interface NatsCommandsOptions {
  nodeId: string;
  /** Where the agent's own API answers on this machine, e.g. `http://127.0.0.1:8090`. */
  localUrl: string;
  /** The agent's bearer token (`auth_token`), if any. */
  authToken: string;
  operations: Operations;
  log: Logger;
}

/**
 * Node commands over NATS (SPEC §8, §10): answers requests on `rolemesh.node.<id>.<command>`
 * by making the request of its own node API that the command stands for — the same routes,
 * checks and answers as over HTTP. For each of its operations it publishes every status change
 * on `rolemesh.op.<op_id>.progress` and answers `rolemesh.op.<op_id>.status` and `.cancel`, so
 * whoever holds an `op_id` reaches it without knowing the node. Each request is handled on its
 * own, so a long install never holds a routine load back. NATS permissions decide who may send
 * commands to this node.
 */
export class NatsCommands {
  readonly #connection: NatsConnection;
  readonly #api: ApiClient;
  readonly #log: Logger;
  readonly #subscription: Subscription;
  /** The subscriptions of each operation still readable. */
  readonly #operations = new Map<string, Subscription[]>();

  constructor(connection: NatsConnection, options: NatsCommandsOptions) {
    this.#connection = connection;
    this.#api = new ApiClient(options.localUrl, options.authToken);
    this.#log = options.log;
    this.#subscription = this.#serve(nodeCommandsOf(options.nodeId), parseCommand);
    options.operations.on("started", (operation) => this.#serveOperation(operation));
    options.operations.on("forgotten", (operation) => this.#forget(operation.id));
  }

  stop(): void {
    this.#subscription.unsubscribe();
    for (const id of [...this.#operations.keys()]) this.#forget(id);
  }

  /** Answers each request on `subject` with the node API's answer to `toRequest(msg)`. */
  #serve(subject: string, toRequest: (msg: Msg) => NatsCommandRequest): Subscription {
    return this.#connection.subscribe(subject, {
      callback: (err, msg) => {
        if (err) this.#log.warn({ err, subject }, "node commands: subscription failed");
        else void this.#answer(msg, toRequest);
      },
    });
  }

  #serveOperation(operation: Operation): void {
    this.#publishProgress(operation);
    const path = fillPath(AGENT_PATHS.operation, { op_id: operation.id });
    this.#operations.set(operation.id, [
      this.#serve(operationSubject(operation.id, "status"), () => ({ method: "GET", path })),
      this.#serve(operationSubject(operation.id, "cancel"), () => ({ method: "DELETE", path })),
    ]);
  }

  #forget(opId: string): void {
    for (const subscription of this.#operations.get(opId) ?? []) subscription.unsubscribe();
    this.#operations.delete(opId);
  }

  async #answer(msg: Msg, toRequest: (msg: Msg) => NatsCommandRequest): Promise<void> {
    let answer: NatsCommandAnswer;
    try {
      const request = toRequest(msg);
      const { status, body } = await this.#api.call(request.method, request.path, {
        ...(request.body !== undefined ? { body: request.body } : {}),
        // The caller keeps its own timeout; the node works on as over HTTP.
        timeoutMs: 0,
      });
      answer = { status, body };
    } catch (err) {
      const error = toRoleMeshError(err);
      answer = { status: error.status, body: error.toBody() };
    }
    if (msg.reply) msg.respond(JSON.stringify(answer));
  }

  #publishProgress(operation: Operation): void {
    const subject = operationProgressSubject(operation.id);
    const publish = (status: ReturnType<Operation["status"]>) => {
      if (!this.#connection.isClosed()) this.#connection.publish(subject, JSON.stringify(status));
      if (status.state !== "running") operation.off("change", publish);
    };
    operation.on("change", publish);
  }
}

/** The request a command message carries; only the node API is reachable. */
function parseCommand(msg: Msg): NatsCommandRequest {
  let request: Partial<NatsCommandRequest>;
  try {
    request = msg.json<Partial<NatsCommandRequest>>();
  } catch {
    throw new RoleMeshError("invalid_request", "a command must be a JSON object");
  }
  const { method, path } = request;
  if (typeof method !== "string" || !METHODS.has(method)) {
    throw new RoleMeshError("invalid_request", "method: expected GET, POST or DELETE");
  }
  if (typeof path !== "string" || !path.startsWith(NODE_API) || path.includes("..")) {
    throw new RoleMeshError("invalid_request", `path: expected a path under ${NODE_API}`);
  }
  return { method: method as NatsCommandRequest["method"], path, body: request.body };
}
