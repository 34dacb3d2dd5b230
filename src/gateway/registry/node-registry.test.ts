import assert from "node:assert/strict";
import { test } from "node:test";
import type { RegistryEvent } from "../../protocol/registry.js";
import { playedNode } from "../../../test/helpers/played-node.js";
import { NodeRegistry } from "./node-registry.js";

const registration = (nodeId: string, order: { started_at: number; sequence: number }) =>
  playedNode(nodeId, order.started_at, { sequence: order.sequence });

test("a short blip never removes a node; a lease without heartbeats does", () => {
  let now = 0;
  const registry = new NodeRegistry({ leaseMs: 3000, now: () => now });
  registry.register(registration("a", { started_at: 1, sequence: 1 }));
  for (now = 1000; now <= 2000; now += 1000) registry.sweep();
  now = 2900; // one or two heartbeats missed
  registry.sweep();
  assert.equal(registry.live().length, 1);
  now = 3100;
  registry.sweep();
  assert.equal(registry.live().length, 0);
});

test("a pause of the gateway itself marks no node dead; the nodes get a full lease after it", () => {
  let now = 0;
  const registry = new NodeRegistry({ leaseMs: 3000, sweepIntervalMs: 1000, now: () => now });
  registry.register(registration("a", { started_at: 1, sequence: 1 }));
  now = 1000;
  registry.sweep();
  now = 5000; // the gateway was stopped for 4 s, longer than the lease
  registry.sweep();
  assert.equal(registry.live().length, 1, "its own silence is not the node's");
  for (now = 6000; now <= 7000; now += 1000) registry.sweep();
  assert.equal(registry.live().length, 1);
  now = 8000; // three seconds of real silence since the gateway came back
  registry.sweep();
  assert.equal(registry.live().length, 0);
});

test("messages older than the held ones change nothing; a restarted agent starts over", () => {
  const registry = new NodeRegistry({ leaseMs: 3000 });
  registry.register(registration("a", { started_at: 10, sequence: 3 }));
  const snapshot = { state: "serving" as const, devices: [], models: [] };
  assert.equal(
    registry.heartbeat({ node_id: "a", started_at: 10, sequence: 3, snapshot }),
    "stale",
  );
  assert.equal(
    registry.heartbeat({ node_id: "a", started_at: 10, sequence: 4, snapshot }),
    "accepted",
  );
  assert.equal(
    registry.heartbeat({ node_id: "a", started_at: 9, sequence: 99, snapshot }),
    "stale",
  );
  assert.equal(
    registry.register(registration("a", { started_at: 11, sequence: 1 })),
    true,
    "a new agent process",
  );
  assert.equal(
    registry.heartbeat({ node_id: "b", started_at: 1, sequence: 1, snapshot }),
    "unknown",
  );
});

test("a deregistered node is not revived by a replayed registration", () => {
  const registry = new NodeRegistry({ leaseMs: 3000 });
  registry.register(registration("a", { started_at: 10, sequence: 1 }));
  assert.equal(registry.deregister({ node_id: "a", started_at: 10, sequence: 2 }), true);
  assert.equal(registry.register(registration("a", { started_at: 10, sequence: 1 })), false);
  assert.equal(registry.register(registration("a", { started_at: 10, sequence: 3 })), true);
});

test("repeated connection failures take a node out; status never shows the agent's token", () => {
  const registry = new NodeRegistry({ leaseMs: 3000, maxConnectFailures: 2 });
  const events: RegistryEvent[] = [];
  registry.on("event", (event) => events.push(event));
  registry.register(registration("a", { started_at: 1, sequence: 1 }));
  const record = registry.get("a");
  assert.equal(record?.agentUrl, "http://127.0.0.1:9");
  assert.ok(record && !JSON.stringify(registry.peerStatus(record)).includes("agent-secret"));
  registry.connectFailed("a");
  assert.equal(registry.live().length, 1);
  registry.connectFailed("a");
  assert.equal(registry.live().length, 0);
  assert.deepEqual(
    events.map((event) => event.type),
    ["node_registered", "node_removed"],
  );
});

test("a pause before the first sweep counts too (a gateway paused right after starting)", () => {
  let now = 0;
  const registry = new NodeRegistry({ leaseMs: 3000, sweepIntervalMs: 1000, now: () => now });
  registry.register(registration("a", { started_at: 1, sequence: 1 }));
  now = 4500;
  registry.sweep();
  assert.equal(registry.live().length, 1);
});

test("a re-registration keeps the record its in-flight requests count on", () => {
  const registry = new NodeRegistry({ leaseMs: 60_000 });
  registry.register(registration("n", { started_at: 1, sequence: 1 }));
  const counted = registry.get("n")!;
  counted.inFlight++; // a request goes out
  registry.register(registration("n", { started_at: 2, sequence: 1 })); // the agent restarted
  counted.inFlight--; // and comes back
  assert.equal(registry.get("n")?.inFlight, 0);
});

test("removed nodes are remembered up to maxTombstones, the oldest forgotten first", () => {
  const registry = new NodeRegistry({ leaseMs: 3000, maxTombstones: 2 });
  for (const nodeId of ["a", "b", "c"]) {
    registry.register(registration(nodeId, { started_at: 10, sequence: 1 }));
    registry.deregister({ node_id: nodeId, started_at: 10, sequence: 2 });
  }
  // "a" left first and is forgotten: its replayed registration is taken as new.
  assert.equal(registry.register(registration("a", { started_at: 10, sequence: 1 })), true);
  assert.equal(registry.register(registration("c", { started_at: 10, sequence: 1 })), false);
  assert.equal(registry.size, 1);
});
