/**
 * P3 readiness: from the moment the upstream answers /health 200 to the first byte of the
 * request that was waiting for it, through the agent (default probe settings).
 */
import { request } from "undici";
import { fakeAgent, stop } from "../lib/cluster.js";
import { chatBody, getJson, postJson } from "../lib/client.js";
import { figure } from "../lib/stats.js";
import type { Figure } from "../lib/stats.js";

const LOAD_MS = 1500;

export async function readiness(repeats: number): Promise<Figure> {
  // The agent's own defaults: only the stand-in's load time is set.
  const agent = await fakeAgent(
    1,
    { llama_server_probe_interval_s: 0.5 },
    {
      FAKE_LLAMA_LOAD_MS: String(LOAD_MS),
    },
  );
  try {
    const gaps: number[] = [];
    for (let i = 0; i < repeats; i++) {
      await postJson(`${agent.url}/v1/node/models/stories/unload`, {});
      const began = performance.now();
      const served = request(`${agent.url}/v1/chat/completions`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify(chatBody(1)),
      }).then(() => performance.now());
      const readyAt = await healthyAt(agent.url, began);
      const servedAt = await served;
      gaps.push(servedAt - readyAt);
    }
    return figure(gaps);
  } finally {
    await stop(agent);
  }
}

/** Polls the starting server's /health every 2 ms; when it first answered 200. */
async function healthyAt(agentUrl: string, since: number): Promise<number> {
  let port: number | null = null;
  while (performance.now() - since < 30_000) {
    if (port === null) {
      const inventory = await getJson<{ devices: { server: { port: number | null } }[] }>(
        `${agentUrl}/v1/node/inventory`,
      );
      port = inventory.devices[0]?.server.port ?? null;
    } else {
      try {
        const answer = await request(`http://127.0.0.1:${port}/health`);
        await answer.body.dump();
        if (answer.statusCode === 200) return performance.now();
      } catch {
        // not listening yet
      }
    }
    await new Promise((resolve) => setTimeout(resolve, 2));
  }
  throw new Error("the server never became healthy");
}
