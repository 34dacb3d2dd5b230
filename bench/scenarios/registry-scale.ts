/**
 * P5 registry scale: simulated nodes heartbeating at the configured interval against one
 * gateway: heartbeat latency p50/p99 and the gateway's CPU at each count, and the largest
 * count held with p99 < 50 ms.
 */
import { spawn } from "node:child_process";
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { ROOT, start, stop } from "../lib/cluster.js";

export interface ScaleRow {
  nodes: number;
  heartbeatsPerSecond: number;
  p50Ms: number;
  p99Ms: number;
  gatewayCpuPct: number;
  errors: number;
}

const INTERVAL_S = 5;

export async function registryScale(
  counts: number[],
  seconds: number,
): Promise<{ rows: ScaleRow[]; largestUnder50: number | null }> {
  const rows: ScaleRow[] = [];
  for (const nodes of counts) {
    rows.push(await measure(nodes, seconds));
  }
  // Beyond the fixed counts, double until p99 reaches 50 ms (the largest count held).
  let largest = rows.filter((row) => row.p99Ms < 50 && row.errors === 0).at(-1)?.nodes ?? null;
  if (largest !== counts.at(-1)) return { rows, largestUnder50: largest };
  for (let next = (largest ?? 1000) * 2; next <= 80_000; next *= 2) {
    const row = await measure(next, seconds);
    rows.push(row);
    if (row.p99Ms >= 50 || row.errors > 0) break;
    largest = next;
  }
  return { rows, largestUnder50: largest };
}

async function measure(nodes: number, seconds: number): Promise<ScaleRow> {
  // Past the default max_nodes: the scenario looks for the largest count the gateway holds.
  const gateway = await start("gateway", { heartbeat_interval_s: INTERVAL_S, max_nodes: 100_000 });
  try {
    // CPU is read around the heartbeat phase only: registration is not the steady state.
    const generator = spawn(
      process.execPath,
      [
        "--import",
        "tsx",
        join(ROOT, "bench/lib/heartbeat-load.ts"),
        gateway.url,
        String(nodes),
        String(INTERVAL_S),
        String(seconds),
      ],
      { cwd: ROOT, stdio: ["ignore", "pipe", "inherit"] },
    );
    const lines = createInterface({ input: generator.stdout })[Symbol.asyncIterator]();
    const first = await lines.next();
    if (first.done) throw new Error("the heartbeat generator stopped before registering");
    const cpuBefore = await cpuSeconds(gateway.pid);
    const wallBefore = performance.now();
    const last = await lines.next();
    const code = await new Promise<number | null>((resolve) =>
      generator.exitCode === null ? generator.on("exit", resolve) : resolve(generator.exitCode),
    );
    const cpu = (await cpuSeconds(gateway.pid)) - cpuBefore;
    const wall = (performance.now() - wallBefore) / 1000;
    if (code !== 0) throw new Error(`heartbeat generator exited with ${code}`);
    const result = JSON.parse(String(last.value)) as {
      perSecond: number;
      p50Ms: number;
      p99Ms: number;
      errors: number;
    };
    return {
      nodes,
      heartbeatsPerSecond: result.perSecond,
      p50Ms: result.p50Ms,
      p99Ms: result.p99Ms,
      gatewayCpuPct: (cpu / wall) * 100,
      errors: result.errors,
    };
  } finally {
    await stop(gateway);
  }
}

/** utime + stime of a process, in seconds (Linux /proc). */
export async function cpuSeconds(pid: number): Promise<number> {
  const stat = await readFile(`/proc/${pid}/stat`, "utf8");
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  return (Number(fields[11]) + Number(fields[12])) / 100;
}
