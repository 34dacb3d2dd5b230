/**
 * P5n registry over NATS: simulated nodes put their descriptors into the nodes bucket every
 * 5 s while two gateways watch it; the time from a put (stamped by the NATS server) to the
 * descriptor in each gateway's registry, read from the gateways' own
 * `rolemesh_gateway_registry_lag_seconds` histogram (p50, p99 as bucket bounds) once
 * registrations have settled, and both gateways' CPU, at each count. Goal: 10,000 nodes with
 * p99 < 100 ms.
 */
import { spawn } from "node:child_process";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { request } from "undici";
import { startNatsServer, stopNatsServers } from "../../test/helpers/nats-server.js";
import { ROOT, start, stop } from "../lib/cluster.js";
import { until } from "../lib/gateway-status.js";
import { sumOfSeries } from "../lib/metrics-text.js";
import { cpuSeconds } from "./registry-scale.js";

export interface NatsScaleRow {
  nodes: number;
  putsPerSecond: number;
  /** Put → the descriptor in a gateway's registry (upper bounds of histogram buckets). */
  p50Ms: number;
  p99Ms: number;
  /** Each gateway's CPU over the heartbeat phase. */
  gatewayCpuPct: number[];
  errors: number;
}

const INTERVAL_S = 5;

export async function registryOverNats(counts: number[], seconds: number): Promise<NatsScaleRow[]> {
  const rows: NatsScaleRow[] = [];
  for (const nodes of counts) rows.push(await measure(nodes, seconds));
  return rows;
}

async function measure(nodes: number, seconds: number): Promise<NatsScaleRow> {
  const nats = await startNatsServer();
  const config = { nats_url: nats.url, heartbeat_interval_s: INTERVAL_S, max_nodes: 100_000 };
  const gateways = [await start("gateway", config), await start("gateway", config)];
  try {
    const generator = spawn(
      process.execPath,
      [
        "--import",
        "tsx",
        join(ROOT, "bench/lib/kv-heartbeat-load.ts"),
        nats.url,
        String(nodes),
        String(INTERVAL_S),
        String(seconds),
      ],
      { cwd: ROOT, stdio: ["ignore", "pipe", "inherit"] },
    );
    const lines = createInterface({ input: generator.stdout })[Symbol.asyncIterator]();
    if ((await lines.next()).done) throw new Error("the NATS load generator stopped early");
    // Registrations settle first: the steady state is what is measured.
    for (const gateway of gateways) await untilHolds(gateway.url, nodes);
    const lagBefore = await Promise.all(gateways.map((gateway) => lagBuckets(gateway.url)));
    const cpuBefore = await Promise.all(gateways.map((gateway) => cpuSeconds(gateway.pid)));
    const wallBefore = performance.now();
    const last = await lines.next();
    const cpu = await Promise.all(gateways.map((gateway) => cpuSeconds(gateway.pid)));
    const wall = (performance.now() - wallBefore) / 1000;
    const lagAfter = await Promise.all(gateways.map((gateway) => lagBuckets(gateway.url)));
    const result = JSON.parse(String(last.value)) as { perSecond: number; errors: number };
    // Both gateways' puts seen during the phase, as one distribution.
    const lag = new Map<number, number>();
    lagAfter.forEach((after, i) => {
      for (const [bound, count] of after) {
        lag.set(bound, (lag.get(bound) ?? 0) + count - (lagBefore[i]!.get(bound) ?? 0));
      }
    });
    return {
      nodes,
      putsPerSecond: result.perSecond,
      p50Ms: bucketQuantile(lag, 0.5) * 1000,
      p99Ms: bucketQuantile(lag, 0.99) * 1000,
      gatewayCpuPct: cpu.map((seconds, i) => ((seconds - cpuBefore[i]!) / wall) * 100),
      errors: result.errors,
    };
  } finally {
    for (const gateway of gateways) await stop(gateway);
    await stopNatsServers();
  }
}

async function metricsOf(url: string): Promise<string> {
  return (await request(`${url}/metrics`)).body.text();
}

/** Waits until a gateway's registry holds `nodes` nodes, by its `rolemesh_nodes` gauge. */
async function untilHolds(url: string, nodes: number): Promise<void> {
  if (!(await until(async () => (await sumOfSeries(url, "rolemesh_nodes")) === nodes, 60_000))) {
    throw new Error(`${url} never held the ${nodes} nodes`);
  }
}

/** The gateway's put → registry lag histogram: upper bound (s) → cumulative count. */
async function lagBuckets(url: string): Promise<Map<number, number>> {
  const buckets = new Map<number, number>();
  const pattern = /^rolemesh_gateway_registry_lag_seconds_bucket\{le="([^"]+)"\} (\d+)/gm;
  for (const [, le, count] of (await metricsOf(url)).matchAll(pattern)) {
    buckets.set(le === "+Inf" ? Number.POSITIVE_INFINITY : Number(le), Number(count));
  }
  return buckets;
}

/** The upper bound of the bucket holding quantile `q` of cumulative `buckets`. */
function bucketQuantile(buckets: Map<number, number>, q: number): number {
  const sorted = [...buckets].sort(([a], [b]) => a - b);
  const total = sorted.at(-1)?.[1] ?? 0;
  return sorted.find(([, count]) => count >= q * total)?.[0] ?? Number.NaN;
}
