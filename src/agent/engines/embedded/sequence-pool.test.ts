import assert from "node:assert/strict";
import { test } from "node:test";
import { SequencePool } from "./sequence-pool.js";

test("hands items out in arrival order and gives released ones to the next waiter", async () => {
  const pool = new SequencePool(["s0"]);
  const first = await pool.acquire();
  const order: string[] = [];
  const second = pool.acquire().then((item) => order.push(`second:${item}`));
  const third = pool.acquire().then((item) => order.push(`third:${item}`));
  pool.release(first);
  await second;
  pool.release("s0");
  await third;
  assert.deepEqual(order, ["second:s0", "third:s0"]);
});

test("a waiter whose signal fires leaves the line", async () => {
  const pool = new SequencePool(["s0"]);
  const held = await pool.acquire();
  const controller = new AbortController();
  const leaving = pool.acquire(controller.signal);
  const staying = pool.acquire();
  controller.abort(new Error("client gone"));
  await assert.rejects(leaving, /client gone/);
  pool.release(held);
  assert.equal(await staying, "s0");
});
