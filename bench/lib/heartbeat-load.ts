/**
 * Simulated nodes for the registry benchmark (P5), run as its own process: registers `nodes`
 * nodes with a gateway, then sends each one's heartbeat every `interval` seconds, spread
 * evenly, for `seconds`; prints latency percentiles as JSON. A load generator, not agents.
 *
 *   node --import tsx bench/lib/heartbeat-load.ts URL NODES INTERVAL_S SECONDS
 */
import { Pool } from "undici";
import { percentile } from "./stats.js";

const [url, nodesArg, intervalArg, secondsArg] = process.argv.slice(2);
const nodes = Number(nodesArg);
const intervalMs = Number(intervalArg) * 1000;
const seconds = Number(secondsArg);
const pool = new Pool(url!, { connections: 64, pipelining: 1 });
const startedAt = Date.now();

/** A snapshot as a one-GPU node with one loaded model sends it (about 1.5 KB). */
function snapshot(index: number) {
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

async function post(path: string, body: unknown): Promise<number> {
  const began = performance.now();
  const answer = await pool.request({
    method: "POST",
    path,
    headers: { "content-type": "application/json" },
    body: JSON.stringify(body),
  });
  await answer.body.dump();
  if (answer.statusCode !== 200) throw new Error(`${path} answered ${answer.statusCode}`);
  return performance.now() - began;
}

const sequence = new Array<number>(nodes).fill(0);
const nodeId = (index: number) => `sim-${index}`;
/** Each simulated agent's node secret, presented from its first registration on. */
const nodeSecret = (index: number) => `sim-secret-${startedAt}-${index}`;

// Registration, 64 at a time.
for (let index = 0; index < nodes; index += 64) {
  await Promise.all(
    Array.from({ length: Math.min(64, nodes - index) }, (_, offset) => {
      const i = index + offset;
      return post("/v1/nodes/register", {
        node_id: nodeId(i),
        started_at: startedAt,
        sequence: ++sequence[i]!,
        hostname: `host-${i}`,
        agent_url: `http://10.0.${Math.floor(i / 250)}.${i % 250}:8090`,
        version: "0.1.0",
        capabilities: {
          hostname: `host-${i}`,
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
        labels: {},
        snapshot: snapshot(i),
        node_secret: nodeSecret(i),
      });
    }),
  );
}

// The parent starts measuring the gateway's CPU from here.
console.log(JSON.stringify({ registered: nodes }));

// Heartbeats: node i beats at offset (i / nodes) of every interval.
const latencies: number[] = [];
let errors = 0;
const inFlight = new Set<Promise<void>>();
const began = performance.now();
const total = Math.floor((seconds * 1000 * nodes) / intervalMs);
for (let n = 0; n < total; n++) {
  const due = began + (n * intervalMs) / nodes;
  const wait = due - performance.now();
  if (wait > 1) await new Promise((resolve) => setTimeout(resolve, wait));
  const i = n % nodes;
  const beat = post("/v1/nodes/heartbeat", {
    node_id: nodeId(i),
    started_at: startedAt,
    sequence: ++sequence[i]!,
    snapshot: snapshot(i),
    node_secret: nodeSecret(i),
  })
    .then((ms) => void latencies.push(ms))
    .catch(() => void errors++)
    .finally(() => inFlight.delete(beat));
  inFlight.add(beat);
}
await Promise.all(inFlight);
await pool.close();
const elapsed = (performance.now() - began) / 1000;
console.log(
  JSON.stringify({
    sent: total,
    errors,
    perSecond: latencies.length / elapsed,
    p50Ms: percentile(latencies, 50),
    p99Ms: percentile(latencies, 99),
  }),
);
