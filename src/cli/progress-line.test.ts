import assert from "node:assert/strict";
import { test } from "node:test";
import type { OperationStatus } from "../protocol/operations.js";
import { describe } from "./progress-line.js";

const status = (progress: Partial<OperationStatus["progress"]>): OperationStatus => ({
  op_id: "op-1",
  command: "model.install",
  node_id: "n",
  state: "running",
  progress: {
    phase: "downloading",
    bytes: 0,
    total_bytes: null,
    percent: null,
    eta_s: null,
    ...progress,
  },
  result: null,
  error: null,
  started_at: "",
  finished_at: null,
});

test("a terminal gets a bar; logs get the same facts without it", () => {
  const half = status({
    bytes: 5 * 1024 * 1024,
    total_bytes: 10 * 1024 * 1024,
    percent: 50,
    eta_s: 7,
  });
  assert.equal(
    describe(half.progress, true),
    "downloading  [##########..........]   50.0%  5.0/10.0 MiB  ETA 7s",
  );
  assert.equal(describe(half.progress, false), "downloading   50.0%  5.0/10.0 MiB  ETA 7s");
  assert.equal(describe(status({ phase: "connecting" }).progress, false), "connecting");
});
