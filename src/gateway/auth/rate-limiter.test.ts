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
