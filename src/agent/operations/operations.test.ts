import assert from "node:assert/strict";
import { once } from "node:events";
import { test } from "node:test";
import type { OperationStatus } from "../../protocol/operations.js";
import { Operations } from "./operations.js";

test("work under a running key is joined; a finished key starts anew", async () => {
  const operations = new Operations("node-1");
  let finish = (_value: unknown) => {};
  const work = () => new Promise((resolve) => (finish = resolve));
  const first = operations.start("model.install", "model.install:a", work);
  const second = operations.start("model.install", "model.install:a", work);
  assert.equal(first.joined, false);
  assert.deepEqual(second, { op_id: first.op_id, joined: true });
  const other = operations.start("model.install", "model.install:b", () => Promise.resolve(1));
  assert.notEqual(other.op_id, first.op_id);

  const operation = operations.get(first.op_id)!;
  const changed = once(operation, "change");
  finish({ path: "/m/a.gguf" });
  const [status] = await changed;
  assert.equal(status.state, "succeeded");
  assert.deepEqual(status.result, { path: "/m/a.gguf" });
  assert.equal(status.progress.phase, "done");
  assert.ok(status.finished_at);
  assert.equal(operations.start("model.install", "model.install:a", work).joined, false);
});

test("progress tells percent; failures keep the error's code", async () => {
  const operations = new Operations("node-1");
  const { op_id } = operations.start("model.install", "k", async (operation) => {
    operation.report({ phase: "downloading", bytes: 0, totalBytes: 200 });
    operation.report({ bytes: 50 });
    const status = operation.status();
    assert.equal(status.progress.percent, 25);
    assert.equal(status.progress.total_bytes, 200);
    throw Object.assign(new Error("boom"), { code: "whatever" });
  });
  const operation = operations.get(op_id)!;
  // The work failed in a later microtask: subscribing now sees the end.
  const status = await new Promise<OperationStatus>((resolve) =>
    operation.on("change", (change) => {
      if (change.state !== "running") resolve(change);
    }),
  );
  assert.equal(status.state, "failed");
  assert.equal(status.error?.code, "internal_error");
  assert.match(status.error?.message ?? "", /boom/);
});

test("a cancelled operation ends cancelled once its work has stopped, not before", async () => {
  const operations = new Operations("node-1");
  let stopped = () => {};
  const { op_id } = operations.start("model.install", "k", (operation) => {
    return new Promise((_resolve, reject) =>
      operation.signal.addEventListener(
        "abort",
        () => (stopped = () => reject(new Error("aborted"))),
      ),
    );
  });
  const operation = operations.get(op_id)!;
  operation.cancel();
  assert.equal(operation.status().state, "running", "the work has not stopped yet");
  assert.equal(operations.start("model.install", "k", () => Promise.resolve()).joined, true);
  stopped();
  assert.equal(await operation.ended(60_000), true);
  assert.equal(operation.status().state, "cancelled");
  assert.equal(operation.status().error, null);
  operation.cancel();
  assert.equal(operation.status().state, "cancelled", "a second cancel changes nothing");
  assert.equal(operations.start("model.install", "k", () => Promise.resolve()).joined, false);
});
