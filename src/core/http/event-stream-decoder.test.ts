import assert from "node:assert/strict";
import { test } from "node:test";
import { EventStreamDecoder, EventTooLargeError } from "./event-stream-decoder.js";

test("an event is handed over once its blank line arrives; comments are skipped", () => {
  const events = new EventStreamDecoder();
  assert.deepEqual(events.push(': waiting\n\ndata: {"a"'), []);
  assert.deepEqual(events.push(":1}\n\ndata: b\n"), ['{"a":1}']);
  assert.deepEqual(events.push("\n"), ["b"]);
});

test("an event or an unfinished line past the limit is refused, not held", () => {
  assert.throws(() => new EventStreamDecoder(8).push("data: 0123456789"), EventTooLargeError);
  const events = new EventStreamDecoder(8);
  events.push("data: 0123\n");
  assert.throws(() => events.push("data: 45678\n"), /longer than 8 characters/);
  assert.deepEqual(new EventStreamDecoder(8).push("data: 0123\n\ndata: 4567\n\n"), [
    "0123",
    "4567",
  ]);
});
