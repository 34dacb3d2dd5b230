/** Single requests for benchmarks that time what happens inside one response. */
import { request } from "undici";

/** A chat request; a `content` of its own makes it another conversation (SPEC §13 routing). */
export const chatBody = (maxTokens: number, stream = false, content = "Once upon a time") => ({
  model: "stories",
  messages: [{ role: "user", content }],
  max_tokens: maxTokens,
  ...(stream ? { stream: true } : {}),
});

export interface StreamTiming {
  status: number;
  /** Milliseconds from sending to the first SSE event carrying data. */
  firstEventMs: number;
  /** Arrival times (ms from sending) of every SSE data event. */
  eventTimes: number[];
  /** Arrival times of the events that carry generated text. */
  tokenTimes: number[];
  headers: Record<string, string | string[] | undefined>;
}

/** Sends a streaming chat and records when each SSE event arrives. */
export async function timedStream(
  url: string,
  body: unknown,
  headers: Record<string, string> = {},
): Promise<StreamTiming> {
  const began = performance.now();
  const answer = await request(url, {
    method: "POST",
    headers: { "content-type": "application/json", ...headers },
    body: JSON.stringify(body),
  });
  const eventTimes: number[] = [];
  const tokenTimes: number[] = [];
  let buffer = "";
  for await (const chunk of answer.body) {
    const now = performance.now() - began;
    buffer += (chunk as Buffer).toString();
    let end: number;
    while ((end = buffer.indexOf("\n\n")) >= 0) {
      const event = buffer.slice(0, end);
      buffer = buffer.slice(end + 2);
      if (!event.startsWith("data:")) continue;
      eventTimes.push(now);
      if (/"content":"[^"]/.test(event)) tokenTimes.push(now);
    }
  }
  return {
    status: answer.statusCode,
    firstEventMs: eventTimes[0] ?? NaN,
    eventTimes,
    tokenTimes,
    headers: answer.headers,
  };
}

export async function postJson<T>(
  url: string,
  body: unknown,
  headers: Record<string, string> = {},
): Promise<{ status: number; body: T; headers: Record<string, string | string[] | undefined> }> {
  const answer = await request(url, {
    method: "POST",
    headers: { "content-type": "application/json", ...headers },
    body: JSON.stringify(body),
  });
  const text = await answer.body.text();
  return {
    status: answer.statusCode,
    body: (text ? JSON.parse(text) : null) as T,
    headers: answer.headers,
  };
}

export async function getJson<T>(url: string): Promise<T> {
  const answer = await request(url);
  return (await answer.body.json()) as T;
}
