/** Small HTTP client helpers for integration tests, on undici (the same stack the agent uses). */
import assert from "node:assert/strict";
import { request } from "undici";

export interface JsonAnswer<T = Record<string, unknown>> {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: T;
  text: string;
}

/** POSTs JSON (or raw text) and reads the whole answer. */
export async function postJson<T = Record<string, unknown>>(
  url: string,
  body: unknown,
  options: { headers?: Record<string, string>; raw?: boolean; signal?: AbortSignal } = {},
): Promise<JsonAnswer<T>> {
  const res = await request(url, {
    method: "POST",
    headers: { "content-type": "application/json", ...options.headers },
    body: options.raw ? (body as string) : JSON.stringify(body),
    signal: options.signal,
  });
  const text = await res.body.text();
  let parsed: unknown = undefined;
  try {
    parsed = JSON.parse(text);
  } catch {
    // not JSON; the caller looks at `text`
  }
  return { status: res.statusCode, headers: res.headers, body: parsed as T, text };
}

export interface StreamedAnswer {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  /** Parsed `data:` payloads in order; `[DONE]` is kept as the string. */
  events: unknown[];
  /** Raw body chunks as they arrived. */
  chunks: string[];
  text: string;
}

/**
 * POSTs a streaming request and collects its SSE events. `onEvent` may return "abort" to
 * close the connection from the client side.
 */
export async function postStream(
  url: string,
  body: unknown,
  options: {
    headers?: Record<string, string>;
    onEvent?: (event: unknown, index: number) => void | "abort" | Promise<void | "abort">;
  } = {},
): Promise<StreamedAnswer> {
  const controller = new AbortController();
  const res = await request(url, {
    method: "POST",
    headers: { "content-type": "application/json", ...options.headers },
    body: JSON.stringify(body),
    signal: controller.signal,
  });
  const answer: StreamedAnswer = {
    status: res.statusCode,
    headers: res.headers,
    events: [],
    chunks: [],
    text: "",
  };
  let pending = "";
  try {
    for await (const chunk of res.body) {
      const text = chunk.toString("utf8");
      answer.chunks.push(text);
      answer.text += text;
      pending += text;
      let boundary: number;
      while ((boundary = pending.indexOf("\n\n")) >= 0) {
        const block = pending.slice(0, boundary);
        pending = pending.slice(boundary + 2);
        for (const line of block.split("\n")) {
          if (!line.startsWith("data: ")) continue;
          const data = line.slice(6);
          const event = data === "[DONE]" ? data : (JSON.parse(data) as unknown);
          answer.events.push(event);
          if ((await options.onEvent?.(event, answer.events.length - 1)) === "abort") {
            controller.abort();
            return answer;
          }
        }
      }
    }
  } catch (err) {
    if (!controller.signal.aborted) throw err;
  }
  return answer;
}

/** The text of a chat or completion stream's content chunks. */
export function streamedText(events: unknown[]): string {
  return events
    .filter(
      (event): event is { choices: { delta?: { content?: string }; text?: string }[] } =>
        typeof event === "object",
    )
    .map((event) => event.choices?.[0]?.delta?.content ?? event.choices?.[0]?.text ?? "")
    .join("");
}

/** Asserts an OpenAI-shaped error answer with the given status and code (SPEC §7). */
export function assertError(answer: JsonAnswer<unknown>, status: number, code: string): void {
  assert.equal(answer.status, status, answer.text);
  const body = answer.body as { error?: { code?: unknown; message?: unknown; type?: unknown } };
  assert.equal(body.error?.code, code, answer.text);
  assert.equal(typeof body.error?.message, "string");
  assert.equal(typeof body.error?.type, "string");
}
