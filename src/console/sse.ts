import { EventStreamDecoder } from "../core/http/event-stream-decoder.js";

/**
 * Reads a `text/event-stream` body and hands each event's data to `onData`. Used for
 * `/api/events` and for streamed chat completions: the browser's EventSource cannot send an
 * Authorization header nor a POST body.
 */
export async function readEventStream(
  body: ReadableStream<Uint8Array>,
  onData: (data: string) => void,
): Promise<void> {
  const reader = body.getReader();
  const text = new TextDecoder();
  const events = new EventStreamDecoder();
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    for (const data of events.push(text.decode(value, { stream: true }))) onData(data);
  }
}
