import { once } from "node:events";
import type { ServerResponse } from "node:http";
import type { Dispatcher } from "undici";
import { errorFromAnswer, RoleMeshError } from "../errors.js";

export interface RelayOptions {
  /** Where to send the request: a pool bound to the upstream's origin. */
  upstream: Dispatcher;
  path: string;
  /** The client's body, forwarded byte for byte. */
  body: Buffer;
  res: ServerResponse;
  /** Fires when the client goes away; the upstream request is aborted with it. */
  signal: AbortSignal;
  /** The whole exchange must end within this many ms, else it fails as `upstream_error`. */
  deadlineMs: number;
  /**
   * The upstream's first body byte must come within this many ms, each interim (1xx) response
   * starting the wait again; else the request fails as unanswered (`UpstreamUnreachableError`)
   * and may go elsewhere. No such limit when undefined.
   */
  firstByteTimeoutMs?: number;
  /** Extra response headers, e.g. which node answered. */
  responseHeaders?: Record<string, string>;
  /** Extra request headers, e.g. the upstream's own bearer token. */
  requestHeaders?: Record<string, string>;
}

export interface RelayResult {
  status: number;
  /** False when the relay ended early: client gone or upstream failed mid-response. */
  complete: boolean;
  /** When the server's first answer byte was relayed (performance.now() ms), if it was. */
  firstByteAt?: number;
}

const SSE_BOUNDARY = "\n\n";

/**
 * Relays one OpenAI request to an upstream server and its answer back, chunk by chunk.
 *
 * Until the first byte reaches the client every failure is thrown as a RoleMeshError (the
 * caller answers it, or tries elsewhere). After that, an upstream failure ends an event stream
 * with a final SSE `error` event, and any other response by closing the connection.
 */
export async function relay(options: RelayOptions): Promise<RelayResult> {
  const clock = new RelayClock(options.deadlineMs, options.firstByteTimeoutMs);
  const onClientGone = () => clock.controller.abort();
  options.signal.addEventListener("abort", onClientGone, { once: true });
  if (options.signal.aborted) clock.controller.abort();
  try {
    return await relayUntil(options, clock);
  } finally {
    options.signal.removeEventListener("abort", onClientGone);
    // However the relay ended (a throw while answering the client included), the upstream
    // request ends with it, so the server never generates for nobody.
    clock.stop();
  }
}

/**
 * A relay's two limits, each aborting `controller` when it passes: the deadline of the whole
 * exchange, and the wait for the first body byte. undici's own timeouts are off (a long
 * generation is normal); these are ours. Plain timers, released when the relay ends
 * (AbortSignal.timeout would keep one per request for the whole deadline).
 */
class RelayClock {
  readonly controller = new AbortController();
  deadlinePassed = false;
  /** The upstream sent nothing within the first-byte timeout. */
  silent = false;
  readonly #deadline: NodeJS.Timeout;
  readonly #firstByte: NodeJS.Timeout | undefined;

  constructor(deadlineMs: number, firstByteTimeoutMs: number | undefined) {
    this.#deadline = setTimeout(() => {
      this.deadlinePassed = true;
      this.controller.abort();
    }, deadlineMs);
    if (firstByteTimeoutMs !== undefined) {
      this.#firstByte = setTimeout(() => {
        this.silent = true;
        this.controller.abort();
      }, firstByteTimeoutMs);
    }
  }

  get signal(): AbortSignal {
    return this.controller.signal;
  }

  /** An interim response: the upstream is working on the request, the wait starts again. */
  progressed(): void {
    if (!this.silent) this.#firstByte?.refresh();
  }

  firstByteArrived(): void {
    clearTimeout(this.#firstByte);
  }

  stop(): void {
    clearTimeout(this.#deadline);
    clearTimeout(this.#firstByte);
    this.controller.abort();
  }
}

async function relayUntil(options: RelayOptions, clock: RelayClock): Promise<RelayResult> {
  const { res } = options;
  const { signal } = clock;
  const clientGone = options.signal;
  const seconds = (ms = 0) => Math.round(ms / 100) / 10;
  const failure = (err: unknown) =>
    clock.deadlinePassed
      ? `no complete answer within ${seconds(options.deadlineMs)} s`
      : clock.silent
        ? `nothing within ${seconds(options.firstByteTimeoutMs)} s`
        : describe(err);
  // Until the client has a byte, a failure is thrown: the caller answers it or tries elsewhere.
  const unanswered = (err: unknown, what: string): RoleMeshError | undefined => {
    if (clientGone.aborted) return undefined;
    // A deadline that passed spent the client's whole budget: the upstream is slow or hung,
    // not gone, so this is final — retrying would only make the client wait twice as long.
    // The first-byte timeout is per try (Envoy's per_try_timeout): silence is taken for gone.
    if (clock.deadlinePassed) {
      return new RoleMeshError("upstream_error", `${what}: ${failure(err)}`, { cause: err });
    }
    return new UpstreamUnreachableError(`${what}: ${failure(err)}`, { cause: err });
  };
  let answer: Dispatcher.ResponseData;
  try {
    answer = await options.upstream.request({
      method: "POST",
      path: options.path,
      headers: {
        "content-type": "application/json",
        accept: "application/json, text/event-stream",
        ...options.requestHeaders,
      },
      body: options.body,
      signal,
      onInfo: () => clock.progressed(),
    });
  } catch (err) {
    const error = unanswered(err, "the upstream did not answer");
    if (!error) return { status: 499, complete: false };
    throw error;
  }

  if (answer.statusCode >= 400) {
    const text = await answer.body.text().catch((err: unknown) => failure(err));
    throw upstreamFailure(answer.statusCode, text, answer.headers["retry-after"]);
  }

  // Nothing goes to the client before the first body byte: an upstream that dies between its
  // headers and its body (an agent killed as it answers) has then sent the client nothing, and
  // the request may still be tried elsewhere.
  const chunks = (answer.body as AsyncIterable<Buffer>)[Symbol.asyncIterator]();
  let next: IteratorResult<Buffer>;
  try {
    next = await chunks.next();
    clock.firstByteArrived();
  } catch (err) {
    const error = unanswered(err, "the upstream closed before its answer");
    if (!error) return { status: 499, complete: false };
    throw error;
  }

  const contentType = String(answer.headers["content-type"] ?? "application/json");
  const isStream = contentType.startsWith("text/event-stream");
  // Only what an OpenAI client reads is passed on: HTML or a script from a node would run on
  // the origin of whoever relays it (a gateway that also serves the console).
  if (!isStream && !contentType.startsWith("application/json")) {
    await chunks.return?.();
    throw new RoleMeshError(
      "upstream_error",
      `the upstream answered ${contentType.split(";")[0]}, not JSON or an event stream`,
    );
  }
  const headers: Record<string, string> = {
    "Content-Type": contentType,
    ...options.responseHeaders,
  };
  if (isStream) {
    // Tell any reverse proxy in front not to buffer the stream.
    headers["Cache-Control"] = "no-cache";
    headers["X-Accel-Buffering"] = "no";
  } else if (answer.headers["content-length"] !== undefined) {
    headers["Content-Length"] = String(answer.headers["content-length"]);
  }
  // A request held for a wake may have started its event stream already (SPEC §11).
  if (!res.headersSent) res.writeHead(answer.statusCode, headers);
  const firstByteAt = next.done ? undefined : performance.now();

  let tail = "";
  try {
    for (; !next.done; next = await chunks.next()) {
      const chunk = next.value;
      if (isStream) tail = (tail + chunk.toString("latin1")).slice(-SSE_BOUNDARY.length);
      if (!res.write(chunk)) await once(res, "drain", { signal });
    }
    res.end();
    return { status: answer.statusCode, complete: true, firstByteAt };
  } catch (err) {
    if (clientGone.aborted) return { status: answer.statusCode, complete: false, firstByteAt };
    if (isStream && !res.writableEnded) {
      const event = new RoleMeshError(
        "upstream_error",
        `the inference server failed mid-stream: ${failure(err)}`,
      ).toBody();
      // Start the error event on an event boundary even if the upstream died mid-event.
      const prefix = tail.endsWith(SSE_BOUNDARY) ? "" : SSE_BOUNDARY;
      res.end(`${prefix}data: ${JSON.stringify(event)}${SSE_BOUNDARY}`);
    } else {
      res.destroy();
    }
    return { status: answer.statusCode, complete: false, firstByteAt };
  }
}

/**
 * Failed before any answer: connection refused or reset, or nothing at all within the
 * first-byte timeout. Nothing reached the client yet and the deadline has not passed, so a
 * caller may try another upstream.
 */
export class UpstreamUnreachableError extends RoleMeshError {
  override readonly name = "UpstreamUnreachableError";
  /**
   * True when the request never reached the upstream (connection refused, or the pool was
   * closed before it was dispatched), so sending it again cannot repeat what it did there.
   */
  readonly neverSent: boolean;

  constructor(message: string, options: { cause?: unknown } = {}) {
    super("upstream_error", message, options);
    const code = (options.cause as { code?: unknown } | undefined)?.code;
    this.neverSent = typeof code === "string" && NEVER_SENT_CODES.has(code);
  }
}

/**
 * Error codes (node's and undici's) of a request the upstream did not take in: refused, the pool
 * closed under it, or a reset/broken pipe — the server's socket was already gone when our bytes
 * arrived (a reused keep-alive connection to a server killed a moment ago). A server that read
 * the request and then crashed closes with a FIN instead, which undici reports as
 * UND_ERR_SOCKET ("other side closed"): that one is not in this list.
 */
const NEVER_SENT_CODES = new Set([
  "ECONNREFUSED",
  "ECONNRESET",
  "EPIPE",
  "UND_ERR_DESTROYED",
  "UND_ERR_CLOSED",
]);

/**
 * Maps an upstream error answer to ours. Another RoleMesh process (an agent behind a gateway)
 * answers with our own codes, which are kept; llama-server uses numeric codes and statuses
 * SPEC §7 does not (500 for malformed JSON, 501 for embeddings that are off).
 */
export function upstreamFailure(
  status: number,
  text: string,
  retryAfter?: string | string[],
): RoleMeshError {
  const ours = errorFromAnswer(text, retryAfter);
  if (ours) return ours;
  let message = text.trim().slice(0, 500) || `status ${status}`;
  let type: string | undefined;
  try {
    const parsed = JSON.parse(text) as { error?: { message?: unknown; type?: unknown } };
    if (typeof parsed.error?.message === "string") message = parsed.error.message;
    if (typeof parsed.error?.type === "string") type = parsed.error.type;
  } catch {
    // not JSON: keep the text
  }
  if (status === 501) {
    return new RoleMeshError(
      "invalid_request",
      `the inference server does not support this endpoint: ${message} (add the flag to the model's args)`,
      { type },
    );
  }
  if (status === 404) return new RoleMeshError("not_found", message, { type });
  if (status >= 400 && status < 500 && status !== 401 && status !== 403) {
    return new RoleMeshError("invalid_request", message, { type });
  }
  // Never pass an upstream's "Loading model" on: to clients the server is simply not ready yet.
  if (status === 503) {
    return new RoleMeshError("no_capacity", "the inference server is not ready; retry shortly", {
      retryAfterS: 1,
    });
  }
  return new RoleMeshError("upstream_error", `the inference server answered ${status}: ${message}`);
}

function describe(err: unknown): string {
  if (err instanceof Error) {
    const code = (err as { code?: unknown }).code;
    return typeof code === "string" ? `${err.message} (${code})` : err.message;
  }
  return String(err);
}
