import type { ServerResponse } from "node:http";
import type { Registry } from "prom-client";

/** Buckets of request durations, in seconds: a short embedding to a generation at the deadline. */
export const REQUEST_DURATION_BUCKETS = [
  0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600,
];

/** Answers a Prometheus scrape with `registry` (each process has its own, never the global one). */
export async function sendMetrics(res: ServerResponse, registry: Registry): Promise<void> {
  const text = await registry.metrics();
  res.writeHead(200, { "Content-Type": registry.contentType });
  res.end(text);
}
