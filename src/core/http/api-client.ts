import { request } from "undici";
import type { Dispatcher } from "undici";
import { errorFromAnswer, RoleMeshError } from "../errors.js";
import { MIB } from "../units.js";
import { EventStreamDecoder, EventTooLargeError } from "./event-stream-decoder.js";

export interface ApiCallOptions {
  body?: unknown;
  /** How long to wait for the whole answer; a command's own timeout (SPEC §10). */
  timeoutMs?: number;
  signal?: AbortSignal;
}

const DEFAULT_TIMEOUT_MS = 30_000;

/**
 * The largest answer, and the largest event of a stream, read from a server: far above any
 * status or command result of a large fleet, far below what would hurt the reader. A peer that
 * sends more is broken or hostile.
 */
export const MAX_ANSWER_BYTES = 32 * MIB;

/**
 * A client of a RoleMesh JSON API (a gateway's or an agent's), with its bearer token. Errors
 * come back as RoleMeshErrors with the code the server answered (SPEC §7); a server that
 * cannot be reached is `upstream_error` naming it.
 */
export class ApiClient {
  readonly baseUrl: string;
  readonly #token: string | undefined;

  constructor(baseUrl: string, token?: string) {
    this.baseUrl = baseUrl.replace(/\/+$/, "");
    this.#token = token || undefined;
  }

  /** Calls `method path` and returns the status and the parsed JSON answer. */
  async call<T = unknown>(
    method: "GET" | "POST" | "DELETE",
    path: string,
    options: ApiCallOptions = {},
  ): Promise<{ status: number; body: T }> {
    const timeoutMs = options.timeoutMs ?? DEFAULT_TIMEOUT_MS;
    const answer = await this.#send(method, path, options, timeoutMs, "application/json");
    const text = await this.#text(answer, path);
    if (answer.statusCode >= 400)
      throw this.#failure(answer.statusCode, text, answer.headers["retry-after"]);
    try {
      return { status: answer.statusCode, body: (text ? JSON.parse(text) : null) as T };
    } catch (err) {
      throw new RoleMeshError(
        "upstream_error",
        `${this.baseUrl} answered ${path} with something other than JSON`,
        { cause: err },
      );
    }
  }

  /**
   * Reads a server-sent event stream (`GET path` with `Accept: text/event-stream`), handing
   * each event's JSON to `onEvent`, until the server ends it or `signal` aborts.
   */
  async events(
    path: string,
    onEvent: (event: unknown) => void,
    signal?: AbortSignal,
  ): Promise<void> {
    const answer = await this.#send("GET", path, signal ? { signal } : {}, 0, "text/event-stream");
    if (answer.statusCode >= 400) {
      throw this.#failure(answer.statusCode, await this.#text(answer, path));
    }
    const text = new TextDecoder();
    const events = new EventStreamDecoder(MAX_ANSWER_BYTES);
    try {
      for await (const chunk of answer.body as AsyncIterable<Buffer>) {
        for (const data of events.push(text.decode(chunk, { stream: true }))) {
          onEvent(JSON.parse(data));
        }
      }
    } catch (err) {
      answer.body.destroy();
      if (!(err instanceof EventTooLargeError)) throw err;
      throw new RoleMeshError("upstream_error", `${this.baseUrl}${path}: ${err.message}`, {
        cause: err,
      });
    }
  }

  /** The whole answer as text, refused past MAX_ANSWER_BYTES (by its length or as it comes). */
  async #text(answer: Dispatcher.ResponseData, path: string): Promise<string> {
    const tooLarge = () =>
      new RoleMeshError(
        "upstream_error",
        `${this.baseUrl} answered ${path} with more than ${MAX_ANSWER_BYTES} bytes`,
      );
    if (Number(answer.headers["content-length"]) > MAX_ANSWER_BYTES) {
      answer.body.destroy();
      throw tooLarge();
    }
    const chunks: Buffer[] = [];
    let size = 0;
    for await (const chunk of answer.body as AsyncIterable<Buffer>) {
      size += chunk.length;
      if (size > MAX_ANSWER_BYTES) {
        answer.body.destroy();
        throw tooLarge();
      }
      chunks.push(chunk);
    }
    return Buffer.concat(chunks).toString("utf8");
  }

  /** The error the server answered: its own code when it is RoleMesh, else upstream_error. */
  #failure(status: number, text: string, retryAfter?: string | string[]): RoleMeshError {
    return (
      errorFromAnswer(text, retryAfter) ??
      new RoleMeshError(
        "upstream_error",
        `${this.baseUrl} answered ${status}: ${text.trim().slice(0, 300) || "no body"}`,
      )
    );
  }

  async #send(
    method: string,
    path: string,
    options: ApiCallOptions,
    timeoutMs: number,
    accept: string,
  ) {
    const headers: Record<string, string> = { accept };
    if (this.#token) headers.authorization = `Bearer ${this.#token}`;
    // Every change is declared JSON, body or not: servers refuse anything else (415).
    if (options.body !== undefined || method !== "GET")
      headers["content-type"] = "application/json";
    try {
      return await request(`${this.baseUrl}${path}`, {
        method: method as "GET",
        headers,
        ...(options.body !== undefined ? { body: JSON.stringify(options.body) } : {}),
        // 0 = no limit: event streams stay open as long as the work lasts.
        headersTimeout: timeoutMs,
        bodyTimeout: timeoutMs,
        ...(options.signal ? { signal: options.signal } : {}),
      });
    } catch (err) {
      if (options.signal?.aborted) throw err;
      const code = (err as { code?: string }).code;
      const message =
        code === "UND_ERR_HEADERS_TIMEOUT" || code === "UND_ERR_BODY_TIMEOUT"
          ? `${this.baseUrl} did not answer within ${Math.round(timeoutMs / 1000)} s; it may still be working`
          : `cannot reach ${this.baseUrl}: ${(err as Error).message}`;
      throw new RoleMeshError("upstream_error", message, { cause: err });
    }
  }
}
