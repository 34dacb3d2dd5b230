/**
 * Simulated nodes heartbeating over NATS for the registry benchmark (P5n), run as its own
 * process: puts `nodes` descriptors into the nodes bucket, then each one again every `interval`
 * seconds, spread evenly, for `seconds`, each stamped with the time it was put (label
 * `sent_at`) so a gateway's watcher can tell how long it took to see it.
 *
 *   node --import tsx bench/lib/kv-heartbeat-load.ts NATS_URL NODES INTERVAL_S SECONDS
 */
import { connect } from "@nats-io/transport-node";
import { openNodesBucket } from "../../src/core/nats/nodes-bucket.js";
import { simulatedNode } from "./simulated-node.js";

const [natsUrl, nodesArg, intervalArg, secondsArg] = process.argv.slice(2);
const nodes = Number(nodesArg);
const intervalS = Number(intervalArg);
const seconds = Number(secondsArg);
const connection = await connect({ servers: natsUrl! });
const bucket = await openNodesBucket(connection, 3 * intervalS);
const startedAt = Date.now();
const sequence = new Array<number>(nodes).fill(0);
const put = (index: number) =>
  bucket.put(
    `sim-${index}`,
    JSON.stringify(
      simulatedNode(index, startedAt, ++sequence[index]!, { sent_at: String(Date.now()) }),
    ),
  );

for (let index = 0; index < nodes; index += 256) {
  await Promise.all(
    Array.from({ length: Math.min(256, nodes - index) }, (_, offset) => put(index + offset)),
  );
}
// The parent starts measuring from here.
console.log(JSON.stringify({ registered: nodes }));

let errors = 0;
let done = 0;
const inFlight = new Set<Promise<void>>();
const began = performance.now();
const total = Math.floor((seconds * nodes) / intervalS);
for (let n = 0; n < total; n++) {
  const due = began + (n * intervalS * 1000) / nodes;
  const wait = due - performance.now();
  if (wait > 1) await new Promise((resolve) => setTimeout(resolve, wait));
  const beat: Promise<void> = put(n % nodes)
    .then(() => void done++)
    .catch(() => void errors++)
    .finally(() => inFlight.delete(beat));
  inFlight.add(beat);
}
await Promise.all(inFlight);
await connection.close();
const elapsed = (performance.now() - began) / 1000;
console.log(JSON.stringify({ sent: total, errors, perSecond: done / elapsed }));
