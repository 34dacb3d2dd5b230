/**
 * P4 failover: three agents behind a gateway under steady load; one is SIGKILLed. How long
 * until the gateway no longer routes to it, and how many client requests failed.
 */
import { request } from "undici";
import { fakeAgent, start, stop } from "../lib/cluster.js";
import type { Started } from "../lib/cluster.js";
import { chatBody } from "../lib/client.js";
import { waitForPeers } from "../lib/gateway-status.js";
import { figure } from "../lib/stats.js";
import type { Figure } from "../lib/stats.js";

export interface FailoverResult {
  removedAfterMs: Figure;
  lastRoutedAfterMs: Figure;
  failed: number;
  total: number;
}

const LOOPS = 16;
const HEARTBEAT_S = 1;

export async function failover(repeats: number): Promise<FailoverResult> {
  const removed: number[] = [];
  const lastRouted: number[] = [];
  let failed = 0;
  let total = 0;
  for (let i = 0; i < repeats; i++) {
    const run = await failoverOnce();
    removed.push(run.removedAfterMs);
    lastRouted.push(run.lastRoutedAfterMs);
    failed += run.failed;
    total += run.total;
  }
  return { removedAfterMs: figure(removed), lastRoutedAfterMs: figure(lastRouted), failed, total };
}

async function failoverOnce() {
  const gateway = await start("gateway", { heartbeat_interval_s: HEARTBEAT_S });
  const agents: Started[] = [];
  try {
    for (let i = 0; i < 3; i++) {
      agents.push(
        await fakeAgent(8, { node_id: `node-${i}` }, {}, [
          "--dispatcher-url",
          gateway.url,
          "--heartbeat-interval",
          String(HEARTBEAT_S),
        ]),
      );
    }
    await waitForPeers(gateway.url, (nodes) => nodes.length === 3, "3 agents to register");
    const victim = "node-1";
    let killedAt = Infinity;
    let removedAt = NaN;
    let lastVictimAnswerAt = 0;
    let stopLoad = false;
    let failed = 0;
    let total = 0;
    const events = watchRemoval(gateway.url, victim, () => (removedAt = performance.now()));
    const loops = Array.from({ length: LOOPS }, async () => {
      while (!stopLoad) {
        const answer = await request(`${gateway.url}/v1/chat/completions`, {
          method: "POST",
          headers: { "content-type": "application/json" },
          body: JSON.stringify(chatBody(4)),
        }).catch(() => undefined);
        total++;
        if (!answer || answer.statusCode !== 200) failed++;
        if (answer?.headers["x-rolemesh-node"] === victim) lastVictimAnswerAt = performance.now();
        await answer?.body.dump();
      }
    });
    await sleep(2000);
    killedAt = performance.now();
    await stop(agents[1]!, "SIGKILL");
    await sleep(3000 * HEARTBEAT_S + 2000);
    stopLoad = true;
    await Promise.all(loops);
    events.abort();
    return {
      removedAfterMs: removedAt - killedAt,
      lastRoutedAfterMs: Math.max(0, lastVictimAnswerAt - killedAt),
      failed,
      total,
    };
  } finally {
    for (const agent of agents) await stop(agent);
    await stop(gateway);
  }
}

function watchRemoval(gatewayUrl: string, nodeId: string, onRemoved: () => void): AbortController {
  const controller = new AbortController();
  void (async () => {
    const answer = await request(`${gatewayUrl}/api/events`, { signal: controller.signal });
    for await (const chunk of answer.body) {
      if ((chunk as Buffer).toString().includes(`"node_removed","node_id":"${nodeId}"`))
        onRemoved();
    }
  })().catch(() => undefined);
  return controller;
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
