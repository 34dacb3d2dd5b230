/**
 * The waker against a real registry and shared document, with real wake commands (small node
 * scripts) and node commands recorded as an agent would answer them.
 */
import assert from "node:assert/strict";
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { after, test } from "node:test";
import { RoleMeshError } from "../../core/errors.js";
import { createLogger } from "../../core/logger.js";
import { JsonFileDocument } from "../../core/state/shared-document.js";
import { playedDevice, playedNode } from "../../../test/helpers/played-node.js";
import { tempDir, waitUntil } from "../../../test/helpers/launcher.js";
import type { NodeCommands } from "../commands/node-commands.js";
import { NodeRegistry } from "../registry/node-registry.js";
import { WakeableEntries, WakeableEntrySchema } from "./wakeable-entries.js";
import type { WakeableEntry } from "./wakeable-entries.js";
import { Waker } from "./waker.js";
import type { WakeSettings, WakeStates } from "./waker.js";

const log = createLogger("silent");
const wakers: Waker[] = [];
after(() => wakers.forEach((waker) => waker.close()));

const SETTINGS: WakeSettings = {
  onDemand: true,
  maxWaitMs: 30_000,
  maxHeld: 100,
  timeoutMs: 30_000,
  cooldownMs: 60_000,
};

/** A wake command that appends a line to `file` (how many times it ran), then exits `code`. */
function countingCommand(file: string, code = 0): string[] {
  const script = `require("node:fs").appendFileSync(${JSON.stringify(file)}, process.env.ROLEMESH_WAKE_ID + "\\n"); process.exit(${code});`;
  return [process.execPath, "-e", script];
}

async function lines(file: string): Promise<string[]> {
  const text = await readFile(file, "utf8").catch(() => "");
  return text.split("\n").filter(Boolean);
}

/** A node serving model `m`, whose one device last worked `idleMs` ago and has `inFlight`. */
let sequence = 1;
function servingNode(nodeId: string, idleMs = 0, inFlight = 0) {
  const lastActive = new Date(Date.now() - idleMs).toISOString();
  return playedNode(nodeId, 1, {
    sequence: sequence++,
    snapshot: {
      state: "standby",
      devices: [
        playedDevice(null, {
          queue: { in_flight: inFlight, pending: 0, limit: 2, last_active_at: lastActive },
        }),
      ],
      models: [{ id: "m", path: "/m.gguf", roles: ["chat"], size_bytes: null, loaded_on: [] }],
    },
  });
}

/** Node commands answered 200, each recorded as `command node`. */
function recordingCommands() {
  const sent: string[] = [];
  const commands = {
    send: (nodeId: string, command: string) => {
      sent.push(`${command} ${nodeId}`);
      return Promise.resolve({ node_id: nodeId, status: 200, body: {} });
    },
  };
  return { sent, commands: commands as unknown as NodeCommands };
}

async function setUp(entry: Record<string, unknown>, settings: Partial<WakeSettings> = {}) {
  const dir = await tempDir("rolemesh-waker-");
  const registry = new NodeRegistry({ leaseMs: 60_000 });
  const entries = await WakeableEntries.open(
    new JsonFileDocument<WakeableEntry[]>(join(dir, "wakeable.json"), []),
    [WakeableEntrySchema.parse(entry)],
  );
  const states = new JsonFileDocument<WakeStates>(join(dir, "wake-states.json"), {});
  const { sent, commands } = recordingCommands();
  const counts = { started: 0, failed: 0, seconds: [] as number[] };
  const makeWaker = () => {
    const waker = new Waker({
      entries,
      registry,
      states,
      initialStates: {},
      commands,
      settings: { ...SETTINGS, ...settings },
      metrics: {
        wakeStarted: () => counts.started++,
        wakeFailed: () => counts.failed++,
        wakeSeconds: (seconds) => counts.seconds.push(seconds),
      },
      log,
    });
    wakers.push(waker);
    return waker;
  };
  return { dir, registry, sent, counts, waker: makeWaker(), makeWaker };
}

const isError = (code: string, message: RegExp) => (err: unknown) => {
  assert.ok(err instanceof RoleMeshError, String(err));
  assert.equal(err.code, code, err.message);
  assert.match(err.message, message);
  return true;
};

test("a hundred requests for a sleeping entry's model or role: one wake, all served once its node registers", async () => {
  const file = join(await tempDir("rolemesh-waker-"), "runs");
  const { registry, waker, counts } = await setUp({
    id: "ws",
    node_id: "ws-node",
    models: ["m", "chat"],
    wake: { command: countingCommand(file) },
  });
  const signal = new AbortController().signal;
  const notices: string[] = [];
  const held = Array.from({ length: 100 }, (_, i) =>
    waker.hold(i % 2 ? "m" : "chat", signal, (id) => notices.push(id)),
  );
  await waitUntil(async () => (await lines(file)).length === 1, "the wake command to run");
  assert.equal(waker.held, 100);
  assert.equal(waker.status()[0]?.state, "waking");
  registry.register(servingNode("ws-node"));
  assert.deepEqual(new Set(await Promise.all(held)), new Set([true]));
  assert.deepEqual(await lines(file), ["ws"], "one run, with ROLEMESH_WAKE_ID");
  assert.equal(notices.length, 100, "each held request told once at once");
  await waitUntil(() => waker.status()[0]?.last_wake_s !== null, "the wake's duration kept");
  const status = waker.status()[0]!;
  assert.equal(status.state, "awake");
  assert.equal(counts.started, 1);
  assert.equal(counts.seconds.length, 1);
  assert.equal(waker.held, 0);
  // Nothing wakeable serves it: the caller answers as it would without wake on demand.
  assert.equal(await waker.hold("other", signal), false);
});

test("a wake whose node never registers fails with the reason; requests get it until the cooldown, a manual wake retries", async () => {
  const file = join(await tempDir("rolemesh-waker-"), "runs");
  const { waker, counts } = await setUp(
    { id: "ws", node_id: "ws-node", models: ["m"], wake: { command: countingCommand(file) } },
    { timeoutMs: 300 },
  );
  const signal = new AbortController().signal;
  await assert.rejects(
    waker.hold("m", signal),
    isError(
      "no_capacity",
      /"ws" could not be woken for m: node ws-node did not register within 0 s/,
    ),
  );
  const status = waker.status()[0]!;
  assert.equal(status.state, "failed");
  assert.match(status.reason ?? "", /did not register/);
  assert.equal(counts.failed, 1);
  // Within the cooldown: the reason at once, no second run.
  await assert.rejects(waker.hold("m", signal), (err: unknown) => {
    isError("no_capacity", /did not register/)(err);
    assert.ok((err as RoleMeshError).retryAfterS! > 1, "Retry-After: the rest of the cooldown");
    return true;
  });
  assert.equal((await lines(file)).length, 1);
  assert.equal((await waker.wake("ws", "manual", true)).state, "waking");
  await waitUntil(async () => (await lines(file)).length === 2, "the manual wake to run");
});

test("a failing action fails the wake with what it said: a command's exit, a webhook's status", async () => {
  const file = join(await tempDir("rolemesh-waker-"), "runs");
  const command = await setUp({
    id: "ws",
    models: ["m"],
    wake: { command: countingCommand(file, 3) },
  });
  await assert.rejects(
    command.waker.hold("m", new AbortController().signal),
    isError("no_capacity", /exited with code 3/),
  );
  const webhook = await setUp({
    id: "vm",
    models: ["m"],
    // Nothing listens on port 9 of loopback (discard): refused at once.
    wake: { webhook: "http://127.0.0.1:9/wake" },
  });
  await assert.rejects(
    webhook.waker.hold("m", new AbortController().signal),
    isError("no_capacity", /the webhook at 127\.0\.0\.1:9 did not answer/),
  );
});

test("past wake_max_wait_s a held request gets 503 waking; beyond wake_max_held one is refused at once", async () => {
  const { waker } = await setUp(
    { id: "ws", node_id: "ws-node", models: ["m"], wake: { command: ["true"] } },
    { maxWaitMs: 300, maxHeld: 1 },
  );
  const signal = new AbortController().signal;
  const first = waker.hold("m", signal);
  await assert.rejects(waker.hold("m", signal), isError("waking", /1 requests wait for it/));
  await assert.rejects(first, isError("waking", /"ws" is still waking for "m" after 0 s/));
  assert.equal(waker.status()[0]?.state, "waking");
});

test("two gateways on one shared document: one wake", async () => {
  const file = join(await tempDir("rolemesh-waker-"), "runs");
  const { waker, makeWaker, registry } = await setUp({
    id: "ws",
    node_id: "ws-node",
    models: ["m"],
    wake: { command: countingCommand(file) },
  });
  const other = makeWaker();
  const signal = new AbortController().signal;
  const held = [waker.hold("m", signal), other.hold("m", signal), other.wake("ws", "manual")];
  await waitUntil(async () => (await lines(file)).length === 1, "the wake command to run");
  registry.register(servingNode("ws-node"));
  await Promise.all(held);
  assert.deepEqual(await lines(file), ["ws"]);
});

test("idle sleep: a node idle past sleep_after_idle_s is told to sleep once; busy, or registered a moment ago, it is not", async () => {
  const { registry, waker, sent } = await setUp({
    id: "ws",
    node_id: "ws-node",
    models: ["m"],
    wake: { command: ["true"] },
    sleep_after_idle_s: 60,
    sleep: "node",
  });
  // Its last request long ago, but registered (woken) just now: idle since it registered.
  registry.register(servingNode("ws-node", 120_000));
  const record = registry.get("ws-node")!;
  // Asserting that nothing happens takes a look past the next idle check (every second).
  const idleCheck = () => new Promise((resolve) => setTimeout(resolve, 1500));
  await idleCheck();
  assert.deepEqual(sent, []);
  record.registeredAt -= 120_000;
  registry.register(servingNode("ws-node", 120_000, 1));
  await idleCheck();
  assert.deepEqual(sent, [], "a request in flight");
  registry.register(servingNode("ws-node", 120_000));
  await waitUntil(() => sent.length > 0, "the idle node to be told to sleep");
  assert.deepEqual(sent, ["node.sleep ws-node"]);
  await idleCheck();
  assert.deepEqual(sent, ["node.sleep ws-node"], "once");
  assert.equal(waker.status()[0]?.state, "awake", "until it leaves");
  registry.remove("ws-node", "test");
  assert.equal(waker.status()[0]?.state, "sleeping");
});

test("idle sleep by the gateway's own command: the node is drained first, and resumed when woken again", async () => {
  const file = join(await tempDir("rolemesh-waker-"), "runs");
  const { registry, waker, sent } = await setUp({
    id: "vm",
    node_id: "vm-node",
    models: ["m"],
    wake: { command: ["true"] },
    sleep_after_idle_s: 60,
    sleep: { command: countingCommand(file) },
  });
  registry.register(servingNode("vm-node", 120_000));
  registry.get("vm-node")!.registeredAt -= 120_000;
  await waitUntil(async () => (await lines(file)).length === 1, "the sleep command to run");
  assert.deepEqual(sent, ["node.drain vm-node"]);
  assert.deepEqual(await lines(file), ["vm"]);
  registry.remove("vm-node", "test");
  assert.equal(waker.status()[0]?.state, "sleeping");

  // Woken, it comes back as it went: drained. The wake resumes it.
  let served = false;
  const held = waker.hold("m", new AbortController().signal).then((value) => (served = value));
  await waitUntil(() => waker.status()[0]?.state === "waking", "the wake");
  const drained = servingNode("vm-node");
  drained.snapshot.draining = true;
  registry.register(drained);
  await waitUntil(() => sent.includes("node.resume vm-node"), "the woken node to be resumed");
  // Drained, it serves nothing yet: the held request waits for its next report.
  assert.equal(served, false);
  registry.register(servingNode("vm-node"));
  assert.equal(await held, true);
});
