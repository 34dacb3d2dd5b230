/**
 * Registry messages of nodes a test plays itself, shaped as an agent sends them: the gateway
 * accepts only complete descriptors.
 */
import type { DeviceInventory, HostCapabilities } from "../../src/protocol/inventory.js";
import type { RegisterRequest } from "../../src/protocol/registry.js";

export function hostCapabilities(hostname: string): HostCapabilities {
  return {
    hostname,
    os: "linux",
    os_release: "6.8.0",
    arch: "x64",
    cpu_model: "Test CPU",
    cpu_cores: 4,
    memory_total_mb: 16_000,
    memory_free_mb: 8000,
    agent_version: "0",
    engine: "llama-server",
    engine_version: null,
  };
}

/** `cpu:0` serving `modelId` (or nothing), with room in its queue; `overrides` on top. */
export function playedDevice(
  modelId: string | null,
  overrides: Partial<DeviceInventory> = {},
): DeviceInventory {
  return {
    ref: { id: "cpu:0", backend: "cpu", index: 0, name: "Test CPU" },
    metrics: { vram_total_mb: 16_000, vram_used_mb: 8000, vram_free_mb: 8000 },
    vram_reserved_mb: 0,
    server: {
      state: modelId ? "ready" : "stopped",
      model_id: modelId,
      pid: null,
      port: null,
      started_at: null,
      ready_at: null,
      restarts: 0,
      consecutive_failures: 0,
      next_attempt_at: null,
    },
    queue: { in_flight: 0, pending: 0, limit: 2 },
    last_error: null,
    log_tail: [],
    ...overrides,
  };
}

/** The descriptor of a node the test plays itself, as an agent would register it. */
export function playedNode(
  nodeId: string,
  startedAt: number,
  extra: Record<string, unknown> = {},
): RegisterRequest {
  return {
    node_id: nodeId,
    hostname: nodeId,
    agent_url: "http://127.0.0.1:9",
    version: "0",
    capabilities: hostCapabilities(nodeId),
    labels: {},
    started_at: startedAt,
    sequence: 1,
    snapshot: { state: "standby", devices: [], models: [] },
    // Presented from the first registration on, so the gateway binds the id to it.
    node_secret: `${nodeId}-secret-0123456789`,
    ...extra,
  };
}
