import assert from "node:assert/strict";
import { test } from "node:test";
import { CrashBackoff } from "./crash-backoff.js";

test("crashes in a row double the delay from 1 s up to a minute", () => {
  const backoff = new CrashBackoff();
  const delays = Array.from({ length: 8 }, () => backoff.crashed(100));
  assert.deepEqual(delays, [1000, 2000, 4000, 8000, 16_000, 32_000, 60_000, 60_000]);
  assert.equal(backoff.consecutiveFailures, 8);
});

test("a server that ran its stable time before crashing starts a fresh series", () => {
  const backoff = new CrashBackoff({ stableRunMs: 10_000 });
  assert.equal(backoff.crashed(500), 1000);
  assert.equal(backoff.crashed(9_999), 2000);
  assert.equal(backoff.crashed(10_000), 1000);
  assert.equal(backoff.consecutiveFailures, 1);
  // The default stable time is the longest delay.
  const longer = new CrashBackoff();
  longer.crashed(0);
  assert.equal(longer.crashed(10_000), 2000);
});

test("succeeded starts a fresh series; reset also clears the wait", () => {
  const backoff = new CrashBackoff();
  backoff.crashed(0);
  backoff.crashed(0);
  backoff.succeeded();
  assert.equal(backoff.crashed(0), 1000);
  assert.ok(backoff.remainingMs() > 0);
  backoff.reset();
  assert.equal(backoff.remainingMs(), 0);
  assert.equal(backoff.consecutiveFailures, 0);
});
