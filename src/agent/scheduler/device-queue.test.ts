import assert from "node:assert/strict";
import { test } from "node:test";
import { RoleMeshError } from "../../core/errors.js";
import type { QueueInfo } from "../../protocol/inventory.js";
import type { ModelEntry } from "../config/agent-config.js";
import { DeviceQueue } from "./device-queue.js";
import type { Lease } from "./device-queue.js";

const model = (model_id: string, parallel = 1): ModelEntry => ({
  model_id,
  path: `/models/${model_id}.gguf`,
  roles: [],
  parallel,
  threads: 0,
  args: [],
  split: "never",
  split_max_nodes: 1,
});

/** The counts of a queue's report, without its clock. */
const counts = ({ in_flight, pending, limit }: QueueInfo) => ({ in_flight, pending, limit });

/** Tracks which acquisitions have been granted, in order. */
function track(
  queue: DeviceQueue,
  m: ModelEntry | null,
  name: string,
  log: string[],
  signal?: AbortSignal,
) {
  return queue.acquire(m, signal).then((lease: Lease) => {
    log.push(name);
    return lease;
  });
}

const settle = () => new Promise((resolve) => setImmediate(resolve));

test("rejects at once with queue_full past the limit, with Retry-After", async () => {
  const queue = new DeviceQueue(2);
  const a = model("a");
  await queue.acquire(a);
  void queue.acquire(a);
  await assert.rejects(queue.acquire(a), (err: unknown) => {
    assert.ok(err instanceof RoleMeshError);
    assert.equal(err.code, "queue_full");
    assert.equal(err.status, 503);
    assert.equal(err.retryAfterS, 1);
    return true;
  });
  assert.deepEqual(counts(queue.info()), { in_flight: 1, pending: 1, limit: 2 });
});

test("serves in arrival order with `parallel` turns of the active model", async () => {
  const queue = new DeviceQueue(10);
  const a = model("a", 2);
  const log: string[] = [];
  const first = await track(queue, a, "1", log);
  const second = await track(queue, a, "2", log);
  const third = track(queue, a, "3", log);
  await settle();
  assert.deepEqual(log, ["1", "2"]);
  first.release();
  await third;
  assert.deepEqual(log, ["1", "2", "3"]);
  second.release();
});

test("another model waits until the device is drained, and later arrivals wait behind it", async () => {
  const queue = new DeviceQueue(10);
  const a = model("a", 2);
  const b = model("b");
  const log: string[] = [];
  const a1 = await track(queue, a, "a1", log);
  const b1 = track(queue, b, "b1", log);
  const a2 = track(queue, a, "a2", log);
  await settle();
  assert.deepEqual(log, ["a1"], "b waits for a1 to finish; a2 does not jump ahead of b");
  a1.release();
  (await b1).release();
  await a2;
  assert.deepEqual(log, ["a1", "b1", "a2"]);
});

test("exclusive work waits for in-flight work and blocks the queue behind it", async () => {
  const queue = new DeviceQueue(10);
  const a = model("a", 4);
  const log: string[] = [];
  const a1 = await track(queue, a, "a1", log);
  const exclusive = track(queue, null, "unload", log);
  const a2 = track(queue, a, "a2", log);
  await settle();
  assert.deepEqual(log, ["a1"]);
  a1.release();
  (await exclusive).release();
  await a2;
  assert.deepEqual(log, ["a1", "unload", "a2"]);
});

test("a queued client that leaves frees its place at once", async () => {
  const queue = new DeviceQueue(2);
  const a = model("a");
  await queue.acquire(a);
  const controller = new AbortController();
  const queued = queue.acquire(a, controller.signal);
  controller.abort(new Error("client gone"));
  await assert.rejects(queued, /client gone/);
  assert.deepEqual(counts(queue.info()), { in_flight: 1, pending: 0, limit: 2 });
  const next = queue.acquire(a);
  assert.equal(queue.info().pending, 1, "the freed place admits the next request");
  void next;
});

test("a lease released twice counts once", async () => {
  const queue = new DeviceQueue(2);
  const lease = await queue.acquire(model("a"));
  lease.release();
  lease.release();
  assert.equal(queue.info().in_flight, 0);
});

test("model work marks the device active when it starts and when it ends; an unload does not", async () => {
  const queue = new DeviceQueue(2);
  assert.equal(queue.info().last_active_at, null);
  const unload = await queue.acquire(null);
  unload.release();
  assert.equal(queue.info().last_active_at, null, "exclusive work is no request");
  const lease = await queue.acquire(model("a"));
  const started = Date.parse(queue.info().last_active_at ?? "");
  assert.ok(started > 0);
  await new Promise((resolve) => setTimeout(resolve, 5));
  lease.release();
  assert.ok(Date.parse(queue.info().last_active_at ?? "") > started, "its end counts too");
});
