import type { ServerResponse } from "node:http";

/** An open server-sent event stream: each `send` is one `data:` event of JSON. */
export interface EventStream {
  send(data: unknown): void;
  end(): void;
}

/** The headers of an SSE response that no proxy in front buffers (SPEC §7.1). */
export const SSE_HEADERS = {
  "Content-Type": "text/event-stream",
  "Cache-Control": "no-cache",
  "X-Accel-Buffering": "no",
} as const;

/** Starts an SSE response. */
export function streamEvents(res: ServerResponse): EventStream {
  res.writeHead(200, SSE_HEADERS);
  return {
    send: (data) => {
      if (!res.writableEnded) res.write(sseEvent(data));
    },
    end: () => res.end(),
  };
}

/** An SSE comment line: readers skip it; it keeps the stream (and its proxies) awake. */
export function sseComment(text: string): string {
  return `: ${text.replace(/[\r\n]+/g, " ")}\n\n`;
}

/** One SSE event carrying `data` as JSON. */
export function sseEvent(data: unknown): string {
  return `data: ${JSON.stringify(data)}\n\n`;
}
