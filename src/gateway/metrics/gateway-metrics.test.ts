import assert from "node:assert/strict";
import { test } from "node:test";
import type { RegisterRequest } from "../../protocol/registry.js";
import { playedNode } from "../../../test/helpers/played-node.js";
import { NodeRegistry } from "../registry/node-registry.js";
import { GatewayMetrics } from "./gateway-metrics.js";

const registration = (nodeId: string, state: RegisterRequest["snapshot"]["state"]) =>
  playedNode(nodeId, 1, { snapshot: { state, devices: [], models: [] } });

/** Every sample of `name` as `label=value,… → value` lines, sorted. */
async function samples(metrics: GatewayMetrics, name: string): Promise<string[]> {
  const metric = (await metrics.registry.getMetricsAsJSON()).find((m) => m.name === name);
  return (metric?.values ?? [])
    .map(({ labels, value }) => {
      const text = Object.entries(labels)
        .map(([key, label]) => `${key}=${label}`)
        .join(",");
      return `${text} → ${value}`;
    })
    .sort();
}

test("nodes by state and in-flight requests per node are read from the registry when scraped", async () => {
  const nodes = new NodeRegistry({ leaseMs: 60_000 });
  const metrics = new GatewayMetrics({
    nodes,
    maxNodes: 10,
    eventClients: () => 3,
    heldRequests: () => 0,
  });
  nodes.register(registration("a", "serving"));
  nodes.register(registration("b", "serving"));
  nodes.register(registration("c", "loading"));
  nodes.get("a")!.inFlight = 2;
  assert.deepEqual(await samples(metrics, "rolemesh_nodes"), [
    "state=client → 0",
    "state=loading → 1",
    "state=serving → 2",
    "state=standby → 0",
  ]);
  assert.deepEqual(await samples(metrics, "rolemesh_gateway_node_in_flight_requests"), [
    "node=a → 2",
    "node=b → 0",
    "node=c → 0",
  ]);
  assert.deepEqual(await samples(metrics, "rolemesh_gateway_event_clients"), [" → 3"]);
  nodes.remove("c", "lease expired");
  assert.deepEqual(await samples(metrics, "rolemesh_gateway_node_in_flight_requests"), [
    "node=a → 2",
    "node=b → 0",
  ]);
  assert.deepEqual(await samples(metrics, "rolemesh_gateway_node_removals_total"), [
    "reason=lease expired → 1",
  ]);
});

test("a node's request series go when it leaves, and nothing is counted for it afterwards", async () => {
  const nodes = new NodeRegistry({ leaseMs: 60_000 });
  const metrics = new GatewayMetrics({
    nodes,
    maxNodes: 10,
    eventClients: () => 0,
    heldRequests: () => 0,
  });
  nodes.register(registration("a", "serving"));
  nodes.register(registration("b", "serving"));
  metrics.observeAttempt("a", "ok");
  metrics.observeAttempt("a", "ok");
  metrics.observeAttempt("a", "queue_full");
  metrics.observeAttempt("b", "unreachable");
  assert.deepEqual(await samples(metrics, "rolemesh_gateway_node_requests_total"), [
    "node=a,outcome=ok → 2",
    "node=a,outcome=queue_full → 1",
    "node=b,outcome=unreachable → 1",
  ]);
  nodes.remove("b", "connection failed repeatedly");
  metrics.observeAttempt("b", "unreachable"); // an attempt that ended after the node left
  assert.deepEqual(await samples(metrics, "rolemesh_gateway_node_requests_total"), [
    "node=a,outcome=ok → 2",
    "node=a,outcome=queue_full → 1",
  ]);
});

test("requests count by model and outcome, and by key name when they came with one", async () => {
  const nodes = new NodeRegistry({ leaseMs: 60_000 });
  const metrics = new GatewayMetrics({
    nodes,
    maxNodes: 10,
    eventClients: () => 0,
    heldRequests: () => 0,
  });
  const endpoint = "/v1/chat/completions";
  metrics.observeRequest({ endpoint, model: "chat", key: "team", outcome: "ok", seconds: 0.2 });
  metrics.observeRequest({
    endpoint,
    model: "",
    key: undefined,
    outcome: "model_not_found",
    seconds: 0,
  });
  assert.deepEqual(await samples(metrics, "rolemesh_gateway_requests_total"), [
    `endpoint=${endpoint},model=,outcome=model_not_found → 1`,
    `endpoint=${endpoint},model=chat,outcome=ok → 1`,
  ]);
  assert.deepEqual(await samples(metrics, "rolemesh_gateway_key_requests_total"), [
    "key=team,outcome=ok → 1",
  ]);
  const text = await metrics.registry.metrics();
  assert.match(text, /rolemesh_gateway_request_duration_seconds_count\{[^}]*model="chat"\} 1/);
});
