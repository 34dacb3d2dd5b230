import { NoRespondersError, RequestError, TimeoutError } from "@nats-io/transport-node";
import type { NatsConnection } from "@nats-io/transport-node";
import { errorFromAnswer, RoleMeshError } from "../../core/errors.js";
import { nodeCommandSubject, operationProgressSubject } from "../../protocol/nats.js";
import type { NatsCommandAnswer, NatsCommandRequest } from "../../protocol/nats.js";
import type { OperationStatus } from "../../protocol/operations.js";
import type { NodeRecord } from "../registry/node-registry.js";
import { operationPath } from "./command-transport.js";
import type { CommandRequest, CommandTransport } from "./command-transport.js";

/** How long a command waits for its answer when its spec names no timeout. */
const DEFAULT_TIMEOUT_MS = 30_000;

/**
 * Commands over NATS (SPEC §8, §10): request-reply on `rolemesh.node.<id>.<command>`, so any
 * gateway commands any node it shares a NATS with. Nobody on the subject is a node gone:
 * 503 `node_unreachable` at once. No answer within the timeout is a node that may still work
 * on it: 504 `still_working` (long work answers at once with an `op_id` to follow instead).
 */
export class NatsCommandTransport implements CommandTransport {
  readonly #connection: NatsConnection;

  constructor(connection: NatsConnection) {
    this.#connection = connection;
  }

  async call<T>(node: NodeRecord, request: CommandRequest): Promise<{ status: number; body: T }> {
    const subject = nodeCommandSubject(node.nodeId, request.command);
    const message: NatsCommandRequest = {
      method: request.method,
      path: request.path,
      ...(request.body !== undefined ? { body: request.body } : {}),
    };
    const timeoutMs = request.timeoutMs ?? DEFAULT_TIMEOUT_MS;
    let answer: NatsCommandAnswer;
    try {
      const reply = await this.#connection.request(subject, JSON.stringify(message), {
        timeout: timeoutMs,
      });
      answer = reply.json<NatsCommandAnswer>();
    } catch (err) {
      throw commandFailure(err, node.nodeId, request.command, timeoutMs);
    }
    if (answer.status >= 400) {
      throw (
        errorFromAnswer(JSON.stringify(answer.body)) ??
        new RoleMeshError("upstream_error", `node ${node.nodeId} answered ${answer.status}`)
      );
    }
    return { status: answer.status, body: answer.body as T };
  }

  /** Subscribes to the operation's progress first, then asks its status: no change is missed. */
  async followOperation(
    node: NodeRecord,
    opId: string,
    onStatus: (status: OperationStatus) => void,
    signal?: AbortSignal,
  ): Promise<void> {
    const progress = this.#connection.subscribe(operationProgressSubject(opId));
    const stop = () => progress.unsubscribe();
    signal?.addEventListener("abort", stop, { once: true });
    try {
      const { body: now } = await this.call<OperationStatus>(node, {
        command: "operation.status",
        method: "GET",
        path: operationPath(opId),
      });
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
}

function commandFailure(
  err: unknown,
  nodeId: string,
  command: string,
  timeoutMs: number,
): RoleMeshError {
  if (err instanceof NoRespondersError || (err instanceof RequestError && err.isNoResponders())) {
    return new RoleMeshError(
      "node_unreachable",
      `node ${nodeId} does not answer on NATS (no responders for ${command})`,
      { cause: err },
    );
  }
  if (err instanceof TimeoutError) {
    return new RoleMeshError(
      "still_working",
      `node ${nodeId} did not answer ${command} within ${Math.round(timeoutMs / 1000)} s; it may still be working on it`,
      { cause: err },
    );
  }
  return new RoleMeshError("upstream_error", `${command} to node ${nodeId} over NATS failed`, {
    cause: err,
  });
}
