import assert from "node:assert/strict";
import { test } from "node:test";
import type { PeerStatus, StatusResponse } from "../protocol/registry.js";
import { FleetStore } from "./fleet-store.js";

function peer(nodeId: string, hostname: string, extra: Partial<PeerStatus> = {}): PeerStatus {
  return {
    node_id: nodeId,
    hostname,
    agent_url: "http://127.0.0.1:1",
    version: "0.1.0",
    labels: {},
    state: "standby",
    draining: false,
    capabilities: {} as PeerStatus["capabilities"],
    devices: [],
    models: [],
    split_groups: [],
    registered_at: new Date(0).toISOString(),
    last_seen: new Date(1000).toISOString(),
    gateway_in_flight: 0,
    ...extra,
  };
}

const status = (peers: PeerStatus[]): StatusResponse => ({
  gateway: { id: "g:8080", version: "0.1.0", url: "http://127.0.0.1:8080", started_at: "" },
  gateways: [],
  node_state: "client",
  node_status: "Client",
  peers,
  wakeable: [],
});

test("the first status fills the store; later events change one node", () => {
  let now = 5000;
  const store = new FleetStore(() => now);
  let changes = 0;
  store.subscribe(() => changes++);
  store.apply({ type: "status", status: status([peer("b", "beta"), peer("a", "alpha")]) });
  assert.deepEqual(
    store.nodes().map((node) => node.node_id),
    ["a", "b"],
  );
  assert.equal(store.sinceHeartbeat("a"), 4000, "from the gateway's last_seen");

  now = 6000;
  store.apply({ type: "node_updated", node: peer("a", "alpha", { state: "serving" }) });
  assert.equal(store.peers.get("a")?.state, "serving");
  now = 6500;
  assert.equal(store.sinceHeartbeat("a"), 500, "from when the heartbeat arrived");

  store.apply({ type: "node_removed", node_id: "b", reason: "lease expired" });
  assert.deepEqual([...store.peers.keys()], ["a"]);
  assert.equal(store.sinceHeartbeat("b"), undefined);
  store.apply({ type: "gateway_state", node_state: "serving" });
  assert.equal(store.gatewayState, "serving");
  assert.equal(changes, 4);
});

test("models and roles are gathered across nodes", () => {
  const store = new FleetStore();
  const model = (id: string, roles: string[], loadedOn: string[] = []) => ({
    id,
    path: `/m/${id}.gguf`,
    roles,
    size_bytes: 1,
    loaded_on: loadedOn,
  });
  store.apply({
    type: "status",
    status: status([
      peer("a", "alpha", { models: [model("qwen", ["chat"], ["gpu:0"]), model("embed", [])] }),
      peer("b", "beta", { models: [model("qwen", ["chat", "code"])] }),
    ]),
  });
  const models = store.models();
  assert.deepEqual(
    models.map((entry) => [entry.id, entry.roles, entry.nodes.map((node) => node.loadedOn)]),
    [
      ["embed", [], [[]]],
      ["qwen", ["chat", "code"], [["gpu:0"], []]],
    ],
  );
  assert.deepEqual(
    [...store.roles()],
    [
      ["chat", ["qwen"]],
      ["code", ["qwen"]],
    ],
  );
});

test("the gateways sharing the fleet come with the status and change with their own event", () => {
  const store = new FleetStore();
  const gateway = (id: string) => ({ id, url: `http://${id}`, version: "0.1.0", last_seen: "" });
  store.apply({ type: "status", status: { ...status([]), gateways: [gateway("g1:8080")] } });
  assert.deepEqual(
    store.gateways.map((g) => g.id),
    ["g1:8080"],
  );
  store.apply({ type: "gateways", gateways: [gateway("g1:8080"), gateway("g2:8080")] });
  assert.deepEqual(
    store.gateways.map((g) => g.id),
    ["g1:8080", "g2:8080"],
  );
});

test("split groups come from their hosts' reports, by model id", () => {
  const store = new FleetStore();
  const group = (model_id: string, role: "host" | "worker", host: string) => ({
    model_id,
    role,
    host,
    members: [],
    links: [],
  });
  store.apply({
    type: "status",
    status: status([
      peer("a", "alpha", {
        split_groups: [group("qwen", "host", "a"), group("big", "worker", "b")],
      }),
      peer("b", "beta", {
        split_groups: [group("big", "host", "b"), group("qwen", "worker", "a")],
      }),
      peer("c", "gamma"),
    ]),
  });
  assert.deepEqual(
    store.splitGroups().map((entry) => [entry.model_id, entry.host]),
    [
      ["big", "b"],
      ["qwen", "a"],
    ],
  );
});
