import type { ServerResponse } from "node:http";

/** An open server-sent event stream: each `send` is one `data:` event of JSON. */
export interface EventStream {
  send(data: unknown): void;
  end(): void;
}

/** Starts an SSE response that no proxy in front buffers (SPEC §7.1 headers). */
export function streamEvents(res: ServerResponse): EventStream {
  res.writeHead(200, {
    "Content-Type": "text/event-stream",
    "Cache-Control": "no-cache",
    "X-Accel-Buffering": "no",
  });
  return {
    send: (data) => {
      if (!res.writableEnded) res.write(sseEvent(data));
    },
    end: () => res.end(),
  };
}

/** One SSE event carrying `data` as JSON. */
export function sseEvent(data: unknown): string {
  return `data: ${JSON.stringify(data)}\n\n`;
}
