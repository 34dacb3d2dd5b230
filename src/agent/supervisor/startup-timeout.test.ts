import assert from "node:assert/strict";
import { test } from "node:test";
import { startupTimeoutMs } from "./startup-timeout.js";

const GIB = 1024 ** 3;

test("the base timeout applies unless per-GiB scaling gives more", () => {
  assert.equal(startupTimeoutMs(30, 0, 40 * GIB), 30_000);
  assert.equal(startupTimeoutMs(30, 2, 4 * GIB), 30_000);
  assert.equal(startupTimeoutMs(30, 2, 40 * GIB), 80_000);
  assert.equal(startupTimeoutMs(30, 2, null), 30_000, "unknown size: the base");
});
