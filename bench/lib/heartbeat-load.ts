/**
 * Simulated nodes for the registry benchmark (P5), run as its own process: registers `nodes`
 * nodes with a gateway, then sends each one's heartbeat every `interval` seconds, spread
 * evenly, for `seconds`; prints latency percentiles as JSON. A load generator, not agents.
 *
 *   node --import tsx bench/lib/heartbeat-load.ts URL NODES INTERVAL_S SECONDS
 */
import { Pool } from "undici";
import { simulatedNode, simulatedNodeId, simulatedSnapshot } from "./simulated-node.js";
import { percentile } from "./stats.js";

const [url, nodesArg, intervalArg, secondsArg] = process.argv.slice(2);
const nodes = Number(nodesArg);
const intervalMs = Number(intervalArg) * 1000;
const seconds = Number(secondsArg);
const pool = new Pool(url!, { connections: 64, pipelining: 1 });
const startedAt = Date.now();

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
/** Each simulated agent's node secret, presented from its first registration on. */
const nodeSecret = (index: number) => `sim-secret-${startedAt}-${index}`;

// Registration, 64 at a time.
for (let index = 0; index < nodes; index += 64) {
  await Promise.all(
    Array.from({ length: Math.min(64, nodes - index) }, (_, offset) => {
      const i = index + offset;
      return post("/v1/nodes/register", {
        ...simulatedNode(i, startedAt, ++sequence[i]!),
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
    node_id: simulatedNodeId(i),
    started_at: startedAt,
    sequence: ++sequence[i]!,
    snapshot: simulatedSnapshot(i),
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
