import assert from "node:assert/strict";
import { test } from "node:test";
import type { DeviceInventory } from "../../protocol/inventory.js";
import type { NodeRecord } from "../registry/node-registry.js";
import { fleetModels, rankNodes } from "./route-picker.js";

function node(
  nodeId: string,
  options: { ready?: string; queued?: number; inFlight?: number; roles?: string[] },
) {
  const device = {
    ref: { id: "gpu:0", backend: "cuda", index: 0, name: "x" },
    server: { state: options.ready ? "ready" : "stopped", model_id: options.ready ?? null },
    queue: { in_flight: options.queued ?? 0, pending: 0, limit: 2 },
  } as unknown as DeviceInventory;
  return {
    nodeId,
    inFlight: options.inFlight ?? 0,
    snapshot: {
      state: "standby",
      devices: [device],
      models: [
        {
          id: "m",
          path: "",
          roles: options.roles ?? ["chat"],
          size_bytes: 0,
          loaded_on: options.ready ? ["gpu:0"] : [],
        },
      ],
    },
  } as unknown as NodeRecord;
}

const order = (nodes: NodeRecord[], name: string, turn = 0) =>
  rankNodes(nodes, name, turn).map((choice) => choice.record.nodeId);

test("loaded and ready with room first, then the least loaded", () => {
  const nodes = [node("idle", {}), node("ready", { ready: "m" }), node("busy", { inFlight: 3 })];
  assert.deepEqual(order(nodes, "chat"), ["ready", "idle", "busy"]);
  const full = [node("full", { ready: "m", queued: 2 }), node("idle", {})];
  assert.deepEqual(
    order(full, "m"),
    ["idle", "full"],
    "a ready node whose queue is full is not preferred",
  );
});

test("equal nodes take turns; a role resolves to the node's model; unknown names match nothing", () => {
  const nodes = [node("a", {}), node("b", {}), node("c", {})];
  assert.deepEqual(
    [0, 1, 2].map((turn) => order(nodes, "chat", turn)[0]),
    ["a", "b", "c"],
  );
  assert.equal(rankNodes(nodes, "chat", 0)[0]?.modelId, "m");
  assert.deepEqual(order(nodes, "nothing"), []);
});

test("the fleet's models and roles with the nodes that serve each", () => {
  assert.deepEqual(fleetModels([node("a", {}), node("b", { roles: ["chat", "code"] })]), [
    { id: "m", kind: "model", nodes: ["a", "b"] },
    { id: "chat", kind: "role", nodes: ["a", "b"] },
    { id: "code", kind: "role", nodes: ["b"] },
  ]);
});
