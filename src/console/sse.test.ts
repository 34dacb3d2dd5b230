import assert from "node:assert/strict";
import { test } from "node:test";
import { readEventStream } from "./sse.js";

/** A body delivered in the given pieces, as a network would cut it. */
function body(pieces: string[]): ReadableStream<Uint8Array> {
  const encoder = new TextEncoder();
  return new ReadableStream({
    start(controller) {
      for (const piece of pieces) controller.enqueue(encoder.encode(piece));
      controller.close();
    },
  });
}

test("events are split on blank lines, whatever the chunking", async () => {
  const seen: string[] = [];
  await readEventStream(
    body([
      'data: {"a":',
      "1}\n",
      "\n: keep-alive\n\ndata: x\r\ndata: y\r\n\r\n",
      "data: [DONE]\n\n",
    ]),
    (data) => seen.push(data),
  );
  assert.deepEqual(seen, ['{"a":1}', "x\ny", "[DONE]"]);
});

test("multi-byte characters cut between chunks stay whole", async () => {
  const bytes = new TextEncoder().encode("data: héllo ✓\n\n");
  const seen: string[] = [];
  const stream = new ReadableStream<Uint8Array>({
    start(controller) {
      for (const byte of bytes) controller.enqueue(new Uint8Array([byte]));
      controller.close();
    },
  });
  await readEventStream(stream, (data) => seen.push(data));
  assert.deepEqual(seen, ["héllo ✓"]);
});
