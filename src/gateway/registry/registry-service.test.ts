import assert from "node:assert/strict";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, test } from "node:test";
import { pino } from "pino";
import { RoleMeshError } from "../../core/errors.js";
import { playedNode } from "../../../test/helpers/played-node.js";
import { NodeIdentities } from "./node-identities.js";
import { NodeRegistry } from "./node-registry.js";
import { RegistryService } from "./registry-service.js";

const dirs: string[] = [];
after(() =>
  Promise.all(dirs.map((dir) => rm(dir, { recursive: true, force: true, maxRetries: 10 }))),
);

/** A service over a fresh registry, with its log lines and every outcome it reported. */
async function setUp(options: { maxNodes?: number; minMessageIntervalS?: number } = {}) {
  const dir = await mkdtemp(join(tmpdir(), "rolemesh-registry-"));
  dirs.push(dir);
  const lines: string[] = [];
  const log = pino({ level: "warn" }, { write: (line: string) => void lines.push(line) });
  const clock = { now: 0 };
  const registry = new NodeRegistry({ leaseMs: 60_000, now: () => clock.now });
  const outcomes: string[] = [];
  const registryService = new RegistryService({
    registry,
    identities: await NodeIdentities.open(dir, 100, log),
    terms: { heartbeat_interval_s: 5, lease_s: 15 },
    allowPublicAgentUrls: false,
    maxNodes: options.maxNodes ?? 100,
    minMessageIntervalS: options.minMessageIntervalS ?? 0,
    observe: (message, outcome) => outcomes.push(`${message} ${outcome}`),
    log,
    now: () => clock.now,
  });
  return { service: registryService, registry, lines, outcomes, clock };
}

const registration = (nodeId: string, sequence = 1) =>
  playedNode(nodeId, 1, { sequence, node_secret: `${nodeId}-secret` });

const beat = (nodeId: string, sequence: number, secret = `${nodeId}-secret`) => ({
  node_id: nodeId,
  node_secret: secret,
  started_at: 1,
  sequence,
  snapshot: { state: "standby" as const, devices: [], models: [] },
});

function refusal(fn: () => unknown): RoleMeshError {
  try {
    fn();
  } catch (err) {
    assert.ok(err instanceof RoleMeshError);
    return err;
  }
  assert.fail("accepted");
}

test("beyond max_nodes a new node is refused with 409 and a log line; it gets in once one leaves", async () => {
  const { service, registry, lines, outcomes } = await setUp({ maxNodes: 2 });
  service.register(registration("a"));
  service.register(registration("b"));
  const refused = refusal(() => service.register(registration("c")));
  assert.equal(refused.code, "conflict");
  assert.equal(refused.status, 409);
  assert.match(refused.message, /max_nodes \(2\)/);
  assert.ok(lines.some((line) => line.includes("registry full") && line.includes('"node_id":"c"')));
  assert.equal(registry.get("c"), undefined);
  // A live node registering again takes no new place.
  service.register(registration("a", 2));
  service.deregister({ node_id: "b", node_secret: "b-secret", started_at: 1, sequence: 2 });
  service.register(registration("c"));
  assert.deepEqual(
    registry
      .live()
      .map((record) => record.nodeId)
      .sort(),
    ["a", "c"],
  );
  assert.deepEqual(outcomes, [
    "register accepted",
    "register accepted",
    "register registry_full",
    "register accepted",
    "deregister accepted",
    "register accepted",
  ]);
});

test("a node faster than its budget gets 429 with Retry-After; others and forgers spend none of it", async () => {
  const { service, registry, clock, outcomes } = await setUp({ minMessageIntervalS: 1 });
  service.register(registration("fast"));
  service.register(registration("calm"));
  for (let i = 0; i < 5; i++) {
    // Another agent's messages for the id are refused without touching the node's budget.
    assert.equal(refusal(() => service.heartbeat(beat("fast", 100, "forged"))).code, "conflict");
  }
  let sequence = 2;
  // The burst (10 messages) is spent at once; then one a second.
  for (let i = 0; i < 10; i++) service.heartbeat(beat("fast", sequence++));
  const limited = refusal(() => service.heartbeat(beat("fast", sequence++)));
  assert.equal(limited.code, "rate_limited");
  assert.equal(limited.retryAfterS, 1);
  assert.deepEqual(service.heartbeat(beat("calm", 2)), { accepted: true });
  assert.equal(
    refusal(() => service.register(registration("fast", sequence++))).code,
    "rate_limited",
  );
  clock.now = 1000;
  assert.deepEqual(service.heartbeat(beat("fast", sequence++)), { accepted: true });
  assert.ok(registry.get("fast"), "a node over its rate is refused messages, not removed");
  assert.equal(outcomes.filter((outcome) => outcome === "heartbeat rate_limited").length, 1);

  // A node that leaves is forgotten: back, it starts with a whole burst.
  service.deregister({ node_id: "fast", node_secret: "fast-secret", started_at: 1, sequence: 99 });
  service.register(registration("fast", 100));
  for (let i = 0; i < 10; i++) service.heartbeat(beat("fast", 101 + i));
});

test("with no limit set, a node may send as fast as it likes", async () => {
  const { service } = await setUp({ minMessageIntervalS: 0 });
  service.register(registration("n"));
  for (let sequence = 2; sequence < 100; sequence++)
    assert.deepEqual(service.heartbeat(beat("n", sequence)), { accepted: true });
});
