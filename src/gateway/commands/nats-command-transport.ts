import { NoRespondersError, RequestError, TimeoutError } from "@nats-io/transport-node";
import type { NatsConnection } from "@nats-io/transport-node";
import { errorFromAnswer, RoleMeshError } from "../../core/errors.js";
import {
  nodeCommandSubject,
  operationProgressSubject,
  operationSubject,
} from "../../protocol/nats.js";
import type {
  NatsCommandAnswer,
  NatsCommandRequest,
  OperationRequest,
} from "../../protocol/nats.js";
import type { OperationStatus } from "../../protocol/operations.js";
import type { NodeRecord } from "../registry/node-registry.js";
import type { CommandAnswer, CommandRequest, CommandTransport } from "./command-transport.js";

/** How long a command waits for its answer when its spec names no timeout. */
const DEFAULT_TIMEOUT_MS = 30_000;
/** A node answers a cancel once the work has stopped, or after 30 s: a little more. */
const OPERATION_TIMEOUT_MS = 35_000;

/**
 * Commands over NATS (SPEC §8, §10): request-reply on `rolemesh.node.<id>.<command>`, so any
 * gateway commands any node it shares a NATS with. Nobody on the subject is a node gone:
 * 503 `node_unreachable` at once. No answer within the timeout is a node that may still work
 * on it: 504 `still_working` (long work answers at once with an `op_id` to follow instead).
 * Operations are asked on `rolemesh.op.<op_id>.*`, answered by whichever node runs them.
 */
export class NatsCommandTransport implements CommandTransport {
  readonly #connection: NatsConnection;

  constructor(connection: NatsConnection) {
    this.#connection = connection;
  }

  call<T>(node: NodeRecord, request: CommandRequest): Promise<CommandAnswer<T>> {
    const message: NatsCommandRequest = {
      method: request.method,
      path: request.path,
      ...(request.body !== undefined ? { body: request.body } : {}),
    };
    const timeoutMs = request.timeoutMs ?? DEFAULT_TIMEOUT_MS;
    return this.#request<T>(
      nodeCommandSubject(node.nodeId, request.command),
      JSON.stringify(message),
      timeoutMs,
      (err) => commandFailure(err, `node ${node.nodeId}`, request.command, timeoutMs),
    );
  }

  operation(opId: string, request: OperationRequest) {
    return this.#request<OperationStatus>(
      operationSubject(opId, request),
      "",
      OPERATION_TIMEOUT_MS,
      (err) =>
        isNoResponders(err)
          ? new RoleMeshError("not_found", `no live node runs operation "${opId}"`, { cause: err })
          : commandFailure(
              err,
              `the node of ${opId}`,
              `operation ${request}`,
              OPERATION_TIMEOUT_MS,
            ),
    );
  }

  /** Subscribes to the operation's progress first, then asks its status: no change is missed. */
  async followOperation(
    opId: string,
    onStatus: (status: OperationStatus) => void,
    signal?: AbortSignal,
  ): Promise<void> {
    const progress = this.#connection.subscribe(operationProgressSubject(opId));
    const stop = () => progress.unsubscribe();
    signal?.addEventListener("abort", stop, { once: true });
    try {
      const { body: now } = await this.operation(opId, "status");
      onStatus(now);
      if (now.state !== "running") return;
      for await (const msg of progress) {
        const status = msg.json<OperationStatus>();
        onStatus(status);
        if (status.state !== "running") return;
      }
    } finally {
      signal?.removeEventListener("abort", stop);
      stop();
    }
  }

  /** One request-reply: the answer, an error answer thrown as its RoleMeshError. */
  async #request<T>(
    subject: string,
    payload: string,
    timeoutMs: number,
    failure: (err: unknown) => RoleMeshError,
  ): Promise<CommandAnswer<T>> {
    let answer: NatsCommandAnswer;
    try {
      const reply = await this.#connection.request(subject, payload, { timeout: timeoutMs });
      answer = reply.json<NatsCommandAnswer>();
    } catch (err) {
      throw failure(err);
    }
    if (answer.status >= 400) {
      throw (
        errorFromAnswer(JSON.stringify(answer.body)) ??
        new RoleMeshError("upstream_error", `${subject} answered ${answer.status}`)
      );
    }
    return { status: answer.status, body: answer.body as T };
  }
}

const isNoResponders = (err: unknown) =>
  err instanceof NoRespondersError || (err instanceof RequestError && err.isNoResponders());

/** What a failed request-reply means, `who` (e.g. `node gpu-1`) having been asked `what`. */
function commandFailure(err: unknown, who: string, what: string, timeoutMs: number): RoleMeshError {
  if (isNoResponders(err)) {
    return new RoleMeshError(
      "node_unreachable",
      `${who} does not answer on NATS (no responders for ${what})`,
      { cause: err },
    );
  }
  if (err instanceof TimeoutError) {
    return new RoleMeshError(
      "still_working",
      `${who} did not answer ${what} within ${Math.round(timeoutMs / 1000)} s; it may still be working on it`,
      { cause: err },
    );
  }
  return new RoleMeshError("upstream_error", `${what} to ${who} over NATS failed`, { cause: err });
}
