import type { ServerResponse } from "node:http";
import { clientSignal } from "../../core/http/client-signal.js";
import type { Logger } from "../../core/logger.js";
import type { OpenAIEndpoint } from "../../core/proxy/openai-request.js";
import { relay, UpstreamUnreachableError } from "../../core/proxy/relay.js";
import type { ModelEntry } from "../config/agent-config.js";
import type { AgentMetrics } from "../metrics/agent-metrics.js";
import type { Device } from "../scheduler/device.js";

export interface InferenceServiceOptions {
  nodeId: string;
  metrics: AgentMetrics;
  /** The whole exchange with a server must end within this (`request_timeout_s`). */
  requestTimeoutMs: number;
  log: Logger;
  /** Throws 503 `shutting_down` while the node refuses new work. */
  admit(): void;
  /** The configured model a request's `model` names (id or role); 404 otherwise. */
  resolveModel(name: string | undefined): ModelEntry;
  /** The device for a request of `model`. */
  chooseDevice(model: ModelEntry): Promise<Device>;
}

/** How long a refused request waits for the supervisor to notice its server's exit. */
const SERVER_EXIT_GRACE_MS = 2000;

/**
 * The node's OpenAI requests (SPEC §5, §7.1): a device, a turn on it, a ready server, the relay;
 * and the one retry the agent allows itself. Every request is counted in the metrics when its
 * connection closes, however it ended.
 */
export class InferenceService {
  readonly #options: InferenceServiceOptions;

  constructor(options: InferenceServiceOptions) {
    this.#options = options;
  }

  /**
   * Starts one request on `res`: counted from now, refused at once (503) while the node drains.
   * The caller reads and checks the body, then hands it to the request's `serve`.
   */
  begin(endpoint: OpenAIEndpoint, res: ServerResponse): InferenceRequest {
    const started = performance.now();
    const request = new InferenceRequest(this.#options, endpoint, res);
    res.once("close", () => {
      const status = res.writableFinished ? String(res.statusCode) : "aborted";
      const seconds = (at: number) => (at - started) / 1000;
      const firstByte =
        request.firstByteAt === undefined ? undefined : seconds(request.firstByteAt);
      this.#options.metrics.observeRequest(
        endpoint,
        request.modelId,
        status,
        seconds(performance.now()),
        firstByte,
      );
    });
    this.#options.admit();
    return request;
  }
}

/** One OpenAI request in the agent, from its checked body to its last byte. */
export class InferenceRequest {
  /** The model it was resolved to ("" until then). */
  modelId = "";
  /** When the server's first answer byte was relayed (performance.now() ms), if it was. */
  firstByteAt: number | undefined;
  readonly #options: InferenceServiceOptions;
  readonly #endpoint: OpenAIEndpoint;
  readonly #res: ServerResponse;

  constructor(options: InferenceServiceOptions, endpoint: OpenAIEndpoint, res: ServerResponse) {
    this.#options = options;
    this.#endpoint = endpoint;
    this.#res = res;
  }

  /** Picks a device, waits for a turn and a ready server, relays `raw` and the answer. */
  async serve(raw: Buffer, name: string | undefined): Promise<void> {
    const options = this.#options;
    const res = this.#res;
    const model = options.resolveModel(name);
    this.modelId = model.model_id;
    const device = await options.chooseDevice(model);
    const signal = clientSignal(res);
    // A server killed a moment ago can still look ready until its exit is noticed: a request
    // it never received waits for that and is served by the restarted server. One it did
    // receive is not sent again: it may be what crashed the server.
    for (let attempt = 1; ; attempt++) {
      let reservation;
      try {
        reservation = await device.reserve(model, signal);
      } catch (err) {
        if (signal.aborted) return; // the client left while queued; nobody to answer
        throw err;
      }
      try {
        const result = await relay({
          upstream: reservation.upstream,
          path: this.#endpoint,
          body: raw,
          res,
          signal,
          deadlineMs: options.requestTimeoutMs,
          responseHeaders: {
            "x-rolemesh-node": options.nodeId,
            "x-rolemesh-model": model.model_id,
          },
        });
        this.firstByteAt = result.firstByteAt;
        if (result.complete) device.served(reservation.upstream);
        return;
      } catch (err) {
        const retry =
          attempt === 1 &&
          err instanceof UpstreamUnreachableError &&
          err.neverSent &&
          !res.headersSent;
        if (!retry || signal.aborted) throw err;
        options.log.warn(
          { device: device.id, err: err.message },
          "server unreachable; retrying once",
        );
        await device.settled(SERVER_EXIT_GRACE_MS);
      } finally {
        reservation.lease.release();
      }
    }
  }
}
