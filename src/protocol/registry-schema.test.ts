import assert from "node:assert/strict";
import { test } from "node:test";
import { parseRequest } from "../core/validation.js";
import { RoleMeshError } from "../core/errors.js";
import type { DeviceInventory } from "./inventory.js";
import { LOG_LINE_MAX_CHARS } from "./inventory.js";
import type { RegisterRequest } from "./registry.js";
import { HeartbeatRequestSchema, RegisterRequestSchema } from "./registry-schema.js";

const device: DeviceInventory = {
  ref: { id: "gpu:0", backend: "cuda", index: 0, uuid: "GPU-1", name: "NVIDIA L4" },
  metrics: { vram_total_mb: 23034, vram_used_mb: 1034, vram_free_mb: 22000, utilization_pct: 17 },
  vram_reserved_mb: 900,
  server: {
    state: "failed",
    model_id: "qwen",
    pid: null,
    port: null,
    started_at: "2025-01-01T00:00:00.000Z",
    ready_at: null,
    restarts: 2,
    consecutive_failures: 1,
    next_attempt_at: "2025-01-01T00:00:02.000Z",
  },
  queue: { in_flight: 0, pending: 0, limit: 2 },
  last_error: {
    message: "the server exited with code 1",
    exit_code: 1,
    signal: null,
    stderr_tail: ["error loading model"],
    at: "2025-01-01T00:00:01.000Z",
  },
  log_tail: ["srv  load_model: loading model"],
};

/** A descriptor as the agent sends it (node-agent.ts), every optional field set. */
const descriptor: RegisterRequest = {
  node_id: "gpu-box",
  started_at: 1_700_000_000_000,
  sequence: 1,
  node_secret: "s".repeat(48),
  hostname: "gpu-box",
  agent_url: "http://10.0.0.7:8090",
  version: "0.1.0",
  capabilities: {
    hostname: "gpu-box",
    os: "linux",
    os_release: "6.8.0",
    arch: "x64",
    cpu_model: "AMD EPYC",
    cpu_cores: 32,
    memory_total_mb: 256_000,
    memory_free_mb: 128_000,
    agent_version: "0.1.0",
    engine: "llama-server",
    engine_version: "b6000",
  },
  labels: { rack: "a1" },
  auth_token: "agent-token-0123456789",
  snapshot: {
    state: "loading",
    draining: false,
    devices: [device],
    models: [{ id: "qwen", path: "/m/q.gguf", roles: ["chat"], size_bytes: 1, loaded_on: [] }],
  },
};

const refusal = (value: unknown) => {
  try {
    parseRequest(RegisterRequestSchema, value);
  } catch (err) {
    assert.ok(err instanceof RoleMeshError);
    return { code: err.code, param: err.param };
  }
  assert.fail("accepted");
};

test("a descriptor as the agent sends it is accepted whole", () => {
  assert.deepEqual(parseRequest(RegisterRequestSchema, descriptor), descriptor);
});

test("unknown fields are dropped at every level, so nothing unchecked is kept", () => {
  const padded = {
    ...descriptor,
    smuggled: "x".repeat(1000),
    capabilities: { ...descriptor.capabilities, smuggled: [1, 2, 3] },
    snapshot: {
      ...descriptor.snapshot,
      devices: [{ ...device, smuggled: {}, ref: { ...device.ref, smuggled: 1 } }],
    },
  };
  assert.deepEqual(parseRequest(RegisterRequestSchema, padded), descriptor);
  const beat = parseRequest(HeartbeatRequestSchema, { ...padded, sequence: 2 });
  assert.deepEqual(Object.keys(beat).sort(), [
    "node_id",
    "node_secret",
    "sequence",
    "snapshot",
    "started_at",
  ]);
});

test("strings and lists past their bounds are refused, naming the field", () => {
  assert.deepEqual(refusal({ ...descriptor, hostname: "h".repeat(257) }), {
    code: "invalid_request",
    param: "hostname",
  });
  const labels = Object.fromEntries(Array.from({ length: 65 }, (_, i) => [`k${i}`, "v"]));
  assert.equal(refusal({ ...descriptor, labels }).param, "labels");
  assert.equal(
    refusal({ ...descriptor, labels: { story: "x".repeat(1025) } }).param,
    "labels.story",
  );
  const longLine = "x".repeat(LOG_LINE_MAX_CHARS + 1);
  const snapshot = { ...descriptor.snapshot, devices: [{ ...device, log_tail: [longLine] }] };
  assert.equal(refusal({ ...descriptor, snapshot }).param, "snapshot.devices.0.log_tail.0");
  const roles = Array.from({ length: 65 }, (_, i) => `r${i}`);
  const models = [{ ...descriptor.snapshot.models[0]!, roles }];
  assert.equal(
    refusal({ ...descriptor, snapshot: { ...descriptor.snapshot, models } }).param,
    "snapshot.models.0.roles",
  );
});

test("a field of the wrong kind, or a missing one, is refused", () => {
  assert.equal(refusal({ ...descriptor, capabilities: {} }).param, "capabilities.hostname");
  const snapshot = { ...descriptor.snapshot, devices: [{ ...device, queue: {} }] };
  assert.equal(refusal({ ...descriptor, snapshot }).param, "snapshot.devices.0.queue.in_flight");
  assert.equal(refusal({ ...descriptor, node_id: "a/b" }).param, "node_id");
});
