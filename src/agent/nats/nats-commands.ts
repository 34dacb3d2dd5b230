import type { NatsConnection, Msg, Subscription } from "@nats-io/transport-node";
import { RoleMeshError, toRoleMeshError } from "../../core/errors.js";
import { ApiClient } from "../../core/http/api-client.js";
import type { Logger } from "../../core/logger.js";
import { nodeCommandsOf, operationProgressSubject } from "../../protocol/nats.js";
import type { NatsCommandAnswer, NatsCommandRequest } from "../../protocol/nats.js";
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
 * checks and answers as over HTTP — and publishes every status change of its operations on
 * `rolemesh.op.<op_id>.progress`. Each request is handled on its own, so a long install never
 * holds a routine load back. NATS permissions decide who may send commands to this node.
 */
export class NatsCommands {
  readonly #connection: NatsConnection;
  readonly #api: ApiClient;
  readonly #subscription: Subscription;

  constructor(connection: NatsConnection, options: NatsCommandsOptions) {
    this.#connection = connection;
    this.#api = new ApiClient(options.localUrl, options.authToken);
    this.#subscription = connection.subscribe(nodeCommandsOf(options.nodeId), {
      callback: (err, msg) => {
        if (err) options.log.warn({ err }, "node commands: subscription failed");
        else void this.#answer(msg);
      },
    });
    options.operations.on("started", (operation) => this.#publishProgress(operation));
  }

  stop(): void {
    this.#subscription.unsubscribe();
  }

  async #answer(msg: Msg): Promise<void> {
    let answer: NatsCommandAnswer;
    try {
      const request = parseCommand(msg);
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
