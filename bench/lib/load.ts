/**
 * Closed-loop HTTP load from a separate process (autocannon), so the load generator does not
 * share an event loop with what it measures.
 */
import { spawn } from "node:child_process";
import { join } from "node:path";
import { ROOT } from "./cluster.js";

export interface LoadResult {
  requestsPerSecond: number;
  p50Ms: number;
  p99Ms: number;
  errors: number;
  non2xx: number;
  total: number;
}

export async function load(options: {
  url: string;
  body: unknown;
  connections: number;
  seconds: number;
  headers?: Record<string, string>;
}): Promise<LoadResult> {
  const args = [
    "--json",
    "-c",
    String(options.connections),
    "-d",
    String(options.seconds),
    "-m",
    "POST",
    "-H",
    "content-type=application/json",
    ...Object.entries(options.headers ?? {}).flatMap(([name, value]) => ["-H", `${name}=${value}`]),
    "-b",
    JSON.stringify(options.body),
    options.url,
  ];
  const child = spawn(join(ROOT, "node_modules/.bin/autocannon"), args, {
    stdio: ["ignore", "pipe", "pipe"],
  });
  let out = "";
  child.stdout.on("data", (chunk: Buffer) => (out += chunk.toString()));
  const code = await new Promise<number | null>((resolve) => child.on("exit", resolve));
  if (code !== 0) throw new Error(`autocannon exited with ${code}`);
  const result = JSON.parse(out) as {
    requests: { average: number; total: number };
    latency: { p50: number; p99: number };
    errors: number;
    non2xx: number;
  };
  return {
    requestsPerSecond: result.requests.average,
    p50Ms: result.latency.p50,
    p99Ms: result.latency.p99,
    errors: result.errors,
    non2xx: result.non2xx,
    total: result.requests.total,
  };
}
