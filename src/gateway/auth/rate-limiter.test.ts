import assert from "node:assert/strict";
import { test } from "node:test";
import { RateLimiter } from "./rate-limiter.js";

test("a key bursts up to its limit, then goes at its rate, and says how long to wait", () => {
  let now = 0;
  const limiter = new RateLimiter(() => now);
  assert.deepEqual(limiter.take("k", 2), { allowed: true });
  assert.deepEqual(limiter.take("k", 2), { allowed: true });
  assert.deepEqual(limiter.take("k", 2), { allowed: false, retryAfterS: 30 });
  now = 30_000;
  assert.deepEqual(limiter.take("k", 2), { allowed: true });
  assert.deepEqual(limiter.take("other", 0), { allowed: true }, "0 means unlimited");
});

test("a burst may differ from the rate; a forgotten name starts with a full burst again", () => {
  let now = 0;
  const limiter = new RateLimiter(() => now);
  // One a second, in bursts of three.
  for (let i = 0; i < 3; i++) assert.deepEqual(limiter.take("node", 60, 3), { allowed: true });
  assert.deepEqual(limiter.take("node", 60, 3), { allowed: false, retryAfterS: 1 });
  now = 1000;
  assert.deepEqual(limiter.take("node", 60, 3), { allowed: true });
  assert.equal(limiter.take("node", 60, 3).allowed, false);
  limiter.forget("node");
  for (let i = 0; i < 3; i++) assert.deepEqual(limiter.take("node", 60, 3), { allowed: true });
});
