/**
 * P1 relay cost: requests/s and latency for a small chat completion at concurrency 1, 16, 64,
 * direct to the upstream stand-in, through the agent, through gateway → agent, and through
 * nginx to the same upstream (the reference for what a relay can do).
 */
import { createServer } from "node:net";
import { fakeAgent, start, stop } from "../lib/cluster.js";
import type { Started } from "../lib/cluster.js";
import { chatBody, getJson, postJson } from "../lib/client.js";
import { load } from "../lib/load.js";
import { startNginx } from "../lib/nginx.js";
import { figure } from "../lib/stats.js";
import type { Figure } from "../lib/stats.js";

export interface RelayRow {
  path: string;
  concurrency: number;
  requestsPerSecond: Figure;
  p50Ms: Figure;
  p99Ms: Figure;
  failed: number;
}

export interface Settings {
  seconds: number;
  repeats: number;
}

const CONCURRENCY = [1, 16, 64];

export async function relayCost(settings: Settings): Promise<RelayRow[]> {
  const agent = await fakeAgent(64);
  const gateway = await start("gateway", { heartbeat_interval_s: 2 });
  const withGateway = await fakeAgent(64, {}, {}, ["--dispatcher-url", gateway.url]);
  try {
    const upstream = await upstreamOf(agent);
    await upstreamOf(withGateway);
    const nginx = await startNginx(upstream.port, await freePort());
    const paths: [string, string][] = [
      ["direct to upstream", upstream.url],
      ["agent", agent.url],
      ["gateway → agent", gateway.url],
      ...(nginx ? ([["nginx → upstream", nginx.url]] as [string, string][]) : []),
    ];
    const rows: RelayRow[] = [];
    for (const concurrency of CONCURRENCY) {
      for (const [path, url] of paths) {
        const runs = [];
        for (let i = 0; i < settings.repeats; i++) {
          runs.push(
            await load({
              url: `${url}/v1/chat/completions`,
              body: chatBody(8),
              connections: concurrency,
              seconds: settings.seconds,
            }),
          );
        }
        rows.push({
          path,
          concurrency,
          requestsPerSecond: figure(runs.map((run) => run.requestsPerSecond)),
          p50Ms: figure(runs.map((run) => run.p50Ms)),
          p99Ms: figure(runs.map((run) => run.p99Ms)),
          failed: runs.reduce((sum, run) => sum + run.errors + run.non2xx, 0),
        });
      }
    }
    await nginx?.stop();
    return rows;
  } finally {
    await stop(withGateway);
    await stop(agent);
    await stop(gateway);
  }
}

/** Loads the model on an agent and answers where its server listens. */
export async function upstreamOf(agent: Started): Promise<{ url: string; port: number }> {
  const loaded = await postJson<{ server: { port: number } }>(
    `${agent.url}/v1/node/models/stories/load`,
    {},
  );
  if (loaded.status !== 200) throw new Error(`load failed: ${JSON.stringify(loaded.body)}`);
  const port = loaded.body.server.port;
  await getJson(`http://127.0.0.1:${port}/health`);
  return { url: `http://127.0.0.1:${port}`, port };
}

function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const probe = createServer().listen(0, "127.0.0.1", () => {
      const { port } = probe.address() as { port: number };
      probe.close(() => resolve(port));
    });
  });
}
