import assert from "node:assert/strict";
import { test } from "node:test";
import { planSplit } from "./split-plan.js";
import type { SplitModel } from "./split-plan.js";

const model = (split: SplitModel["split"], size_mb = 1000, split_max_nodes = 4): SplitModel => ({
  model_id: "big",
  size_mb,
  split,
  split_max_nodes,
});
const nodes = (...free: number[]) => free.map((free_mb, i) => ({ node_id: `n${i}`, free_mb }));
const ids = (plan: ReturnType<typeof planSplit>) => plan?.members.map((member) => member.node_id);

test("a node with room runs the model alone; the host is the one with the most free memory", () => {
  const plan = planSplit(model("auto"), nodes(800, 1200, 5000));
  assert.equal(plan?.host, "n2");
  assert.deepEqual(plan?.members, [{ node_id: "n2", free_mb: 5000, fraction: 1 }]);
});

test("ties go to the lowest node id, wherever the candidates come from", () => {
  const candidates = [
    { node_id: "b", free_mb: 600 },
    { node_id: "a", free_mb: 600 },
    { node_id: "c", free_mb: 600 },
  ];
  const plan = planSplit(model("auto"), candidates);
  assert.deepEqual(ids(plan), ["a", "b"]);
  assert.deepEqual(planSplit(model("auto"), [...candidates].reverse()), plan);
});

test("without room, workers join largest first until the group has room; fractions by memory", () => {
  const plan = planSplit(model("auto"), nodes(300, 700, 200, 250));
  assert.deepEqual(ids(plan), ["n1", "n0", "n3"]);
  assert.deepEqual(
    plan?.members.map((member) => member.fraction),
    [0.56, 0.24, 0.2],
  );
  assert.equal(planSplit(model("auto", 1000, 2), nodes(300, 700, 200, 250)), null, "capped");
  assert.equal(planSplit(model("auto"), nodes(100, 200)), null, "too big for all of them");
  assert.equal(planSplit(model("auto"), []), null);
});

test("always takes at least one worker; never keeps the host alone", () => {
  assert.deepEqual(ids(planSplit(model("always"), nodes(5000, 3000, 2000))), ["n0", "n1"]);
  assert.deepEqual(ids(planSplit(model("always"), nodes(5000))), ["n0"]);
  assert.deepEqual(ids(planSplit(model("never"), nodes(100, 3000))), ["n1"]);
  assert.deepEqual(ids(planSplit(model("always", 1000, 1), nodes(5000, 3000))), ["n0"]);
});
