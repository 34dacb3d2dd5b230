import assert from "node:assert/strict";
import { test } from "node:test";
import { pino } from "pino";
import type {
  DeregisterRequest,
  HeartbeatRequest,
  RegisterRequest,
  RegisterResponse,
} from "../../protocol/registry.js";
import { Registrar } from "./registrar.js";
import type { RegistryClient } from "./registry-client.js";

/** Waits with a timer that keeps the test alive (core's `sleep` does not). */
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** The gateway's heartbeat interval: short, so a test sees several. */
const INTERVAL_S = 0.02;

type Kind = "register" | "heartbeat" | "deregister";

/** A gateway that answers everything and remembers each message's kind and sequence. */
class RecordingRegistry implements RegistryClient {
  readonly messages: { kind: Kind; sequence: number }[] = [];

  register(message: RegisterRequest): Promise<RegisterResponse> {
    this.messages.push({ kind: "register", sequence: message.sequence });
    return Promise.resolve({
      node_id: message.node_id,
      node_secret: "secret",
      heartbeat_interval_s: INTERVAL_S,
      lease_s: 3 * INTERVAL_S,
    });
  }

  heartbeat(message: HeartbeatRequest): Promise<void> {
    this.messages.push({ kind: "heartbeat", sequence: message.sequence });
    return Promise.resolve();
  }

  deregister(message: DeregisterRequest): Promise<void> {
    this.messages.push({ kind: "deregister", sequence: message.sequence });
    return Promise.resolve();
  }

  kinds(): Kind[] {
    return this.messages.map((message) => message.kind);
  }

  count(kind: Kind): number {
    return this.kinds().filter((each) => each === kind).length;
  }

  /** Polls until `check` holds; fails after two seconds. */
  async until(check: () => boolean, what: string): Promise<void> {
    const deadline = Date.now() + 2000;
    while (!check()) {
      if (Date.now() > deadline) assert.fail(`timed out waiting for ${what}: ${this.kinds()}`);
      await sleep(5);
    }
  }
}

function registrar(client: RegistryClient): Registrar {
  return new Registrar({
    client,
    nodeId: "node-a",
    describe: () => ({
      hostname: "host-a",
      agent_url: "http://127.0.0.1:1",
      version: "test",
      capabilities: {
        hostname: "host-a",
        os: "linux",
        os_release: "6",
        arch: "x64",
        cpu_model: "cpu",
        cpu_cores: 2,
        memory_total_mb: 1024,
        memory_free_mb: 512,
        agent_version: "test",
        engine: "fake",
        engine_version: null,
      },
      labels: {},
    }),
    snapshot: () => ({ state: "standby", devices: [], models: [] }),
    log: pino({ level: "silent" }),
    heartbeatIntervalS: INTERVAL_S,
    nodeSecret: undefined,
    saveNodeSecret: () => Promise.resolve(),
  });
}

test("pause deregisters and stops heartbeating; resume registers first, then heartbeats", async () => {
  const registry = new RecordingRegistry();
  const agent = registrar(registry);
  agent.start();
  await registry.until(() => registry.count("heartbeat") >= 2, "heartbeats");

  await agent.pause();
  assert.equal(registry.kinds().at(-1), "deregister");
  assert.equal(agent.registered, false);
  const whilePaused = registry.messages.length;
  await sleep(5 * INTERVAL_S * 1000);
  assert.equal(registry.messages.length, whilePaused, "nothing is sent while paused");

  agent.resume();
  await registry.until(() => registry.count("register") === 2, "the register after resume");
  await registry.until(() => registry.kinds().at(-1) === "heartbeat", "heartbeats again");
  assert.deepEqual(registry.kinds().slice(whilePaused, whilePaused + 2), ["register", "heartbeat"]);
  // One agent process: every message is newer than the one before, the deregister included.
  const sequences = registry.messages.map((message) => message.sequence);
  assert.deepEqual(
    sequences,
    [...sequences].sort((a, b) => a - b),
  );
  await agent.stop();
});

test("resume waits its delay, and a pause meanwhile cancels it", async () => {
  const registry = new RecordingRegistry();
  const agent = registrar(registry);
  agent.start();
  await registry.until(() => agent.registered, "the registration");
  await agent.pause();

  agent.resume(60_000);
  await agent.pause();
  agent.resume(100);
  const resumedAt = Date.now();
  await registry.until(() => registry.count("register") === 2, "the delayed register");
  assert.ok(Date.now() - resumedAt >= 90, "registered again only after the delay");
  await agent.stop();
  assert.equal(registry.count("register"), 2, "the cancelled resume never ran");
});

test("stop deregisters for good: a resume after it sends nothing", async () => {
  const registry = new RecordingRegistry();
  const agent = registrar(registry);
  agent.start();
  await registry.until(() => agent.registered, "the registration");
  await agent.stop();
  assert.deepEqual(registry.kinds().slice(-1), ["deregister"]);
  const afterStop = registry.messages.length;

  agent.resume();
  agent.start();
  await sleep(5 * INTERVAL_S * 1000);
  assert.equal(registry.messages.length, afterStop);
});

test("a pause while paused sends no second deregister", async () => {
  const registry = new RecordingRegistry();
  const agent = registrar(registry);
  agent.start();
  await registry.until(() => agent.registered, "the registration");
  await Promise.all([agent.pause(), agent.pause()]);
  await agent.stop();
  assert.equal(registry.count("deregister"), 1);
});
