/**
 * The registry messages of a simulated node, for the registry benchmarks (P5 over HTTP, P5n
 * over NATS): shaped as an agent sends them, one GPU serving one model.
 */
import type { RegisterRequest } from "../../src/protocol/registry.js";

export const simulatedNodeId = (index: number) => `sim-${index}`;

/** The whole descriptor of node `index` (about 2 KB), as registered and, over NATS, put. */
export function simulatedNode(
  index: number,
  startedAt: number,
  sequence: number,
  labels: Record<string, string> = {},
): RegisterRequest {
  return {
    node_id: simulatedNodeId(index),
    started_at: startedAt,
    sequence,
    hostname: `host-${index}`,
    agent_url: `http://10.0.${Math.floor(index / 250)}.${index % 250}:8090`,
    version: "0.1.0",
    capabilities: {
      hostname: `host-${index}`,
      os: "linux",
      os_release: "6.8.0",
      arch: "x64",
      cpu_model: "AMD EPYC 7543",
      cpu_cores: 32,
      memory_total_mb: 256_000,
      memory_free_mb: 128_000,
      agent_version: "0.1.0",
      engine: "llama-server",
      engine_version: null,
    },
    labels,
    snapshot: simulatedSnapshot(index),
  };
}

/** A snapshot as a one-GPU node with one loaded model sends it (about 1.5 KB). */
export function simulatedSnapshot(index: number): RegisterRequest["snapshot"] {
  return {
    state: "serving",
    draining: false,
    models: [
      {
        id: "qwen",
        path: "/models/qwen.gguf",
        roles: ["chat"],
        size_bytes: 4e8,
        loaded_on: ["gpu:0"],
      },
    ],
    devices: [
      {
        ref: { id: "gpu:0", backend: "cuda", index: 0, name: "NVIDIA GeForce RTX 4090" },
        metrics: {
          vram_total_mb: 24564,
          vram_used_mb: 9000 + (index % 100),
          vram_free_mb: 15000,
          utilization_pct: 35,
        },
        vram_reserved_mb: 8800,
        server: {
          state: "ready",
          model_id: "qwen",
          pid: 1000 + index,
          port: 40000,
          started_at: null,
          ready_at: null,
          restarts: 0,
          consecutive_failures: 0,
          next_attempt_at: null,
        },
        queue: { in_flight: 1, pending: 0, limit: 8 },
        last_error: null,
        log_tail: ["srv  log_server_r: request: POST /v1/chat/completions 127.0.0.1 200"],
      },
    ],
  };
}
