/**
 * P4g gateway failover: two gateways and three agents joined over NATS, under steady load from
 * clients that know both gateways (each prefers one and sends a request once to the other when
 * the connection fails before any response byte, as a client with a list of base URLs or an L4
 * balancer would); one gateway is SIGKILLed. How many requests were lost after that retry,
 * retried, or cut after their response had begun, and the latency before and after the kill.
 * Goal: 0 admitted requests lost.
 */
import { request } from "undici";
import { startNatsServer, stopNatsServers } from "../../test/helpers/nats-server.js";
import { sleep } from "../../src/core/async.js";
import { fakeAgent, start, stop } from "../lib/cluster.js";
import type { Started } from "../lib/cluster.js";
import { chatBody } from "../lib/client.js";
import { waitForPeers } from "../lib/gateway-status.js";
import { figure, percentile } from "../lib/stats.js";
import type { Figure } from "../lib/stats.js";
import { upstreamOf } from "./relay.js";

export interface GatewayFailoverResult {
  requests: number;
  /** Failed for the client even after its one retry on the other gateway. */
  lost: number;
  /** Sent again to the other gateway after a connection failure. */
  retried: number;
  /** Of the retried, those already sent when the gateway was killed. */
  retriedInFlight: number;
  /** Response headers received, then the connection cut: failed for the client. */
  cut: number;
  /** Latency of answered requests that ended before / after the kill (first send to last byte). */
  before: { p50Ms: Figure; p99Ms: Figure };
  after: { p50Ms: Figure; p99Ms: Figure };
}

const LOOPS = 16;
const HEARTBEAT_S = 1;
const NODES = 3;
/** Tokens take time, so requests are in flight inside the gateway when it is killed. */
const TOKEN_MS = 10;
const TOKENS = 8;
/** Failures before any response byte, which a client may safely send elsewhere. */
const CONNECTION_FAILURES = new Set(["ECONNREFUSED", "ECONNRESET", "UND_ERR_SOCKET"]);

type Outcome = "answered" | "unreachable" | "cut" | "failed";

interface Run {
  requests: number;
  lost: number;
  retried: number;
  retriedInFlight: number;
  cut: number;
  beforeMs: number[];
  afterMs: number[];
}

export async function gatewayFailover(repeats: number): Promise<GatewayFailoverResult> {
  const runs: Run[] = [];
  for (let i = 0; i < repeats; i++) runs.push(await gatewayFailoverOnce());
  const sum = (count: (run: Run) => number) => runs.reduce((total, run) => total + count(run), 0);
  const latency = (of: (run: Run) => number[]) => ({
    p50Ms: figure(runs.map((run) => percentile(of(run), 50))),
    p99Ms: figure(runs.map((run) => percentile(of(run), 99))),
  });
  return {
    requests: sum((run) => run.requests),
    lost: sum((run) => run.lost),
    retried: sum((run) => run.retried),
    retriedInFlight: sum((run) => run.retriedInFlight),
    cut: sum((run) => run.cut),
    before: latency((run) => run.beforeMs),
    after: latency((run) => run.afterMs),
  };
}

async function gatewayFailoverOnce(): Promise<Run> {
  const nats = await startNatsServer();
  const config = { nats_url: nats.url, heartbeat_interval_s: HEARTBEAT_S };
  const gateways: Started[] = [];
  const agents: Started[] = [];
  try {
    gateways.push(await start("gateway", config), await start("gateway", config));
    for (let i = 0; i < NODES; i++) {
      const agent = await fakeAgent(
        8,
        { ...config, node_id: `node-${i}` },
        {
          FAKE_LLAMA_TOKEN_MS: String(TOKEN_MS),
        },
      );
      agents.push(agent);
      // Loaded up front, so no model load lands in the latency measured.
      await upstreamOf(agent);
    }
    for (const gateway of gateways) {
      await waitForPeers(
        gateway.url,
        (nodes) => nodes.length === NODES && nodes.every((node) => node.state === "serving"),
        `${gateway.url} to list ${NODES} serving nodes`,
      );
    }
    const urls = gateways.map((gateway) => gateway.url);
    const run: Run = {
      requests: 0,
      lost: 0,
      retried: 0,
      retriedInFlight: 0,
      cut: 0,
      beforeMs: [],
      afterMs: [],
    };
    let killedAt = Infinity;
    let stopLoad = false;
    // Half the loops prefer each gateway; half of each half stream, so some responses are
    // under way at the kill.
    const loops = Array.from({ length: LOOPS }, async (_, i) => {
      const preferred = urls[i % 2]!;
      const other = urls[(i + 1) % 2]!;
      const body = JSON.stringify(chatBody(TOKENS, i % 4 >= 2));
      while (!stopLoad) {
        const began = performance.now();
        let outcome = await attempt(preferred, body);
        if (outcome === "unreachable") {
          run.retried++;
          if (began < killedAt) run.retriedInFlight++;
          outcome = await attempt(other, body);
        }
        const ended = performance.now();
        run.requests++;
        if (outcome === "cut") run.cut++;
        else if (outcome !== "answered") run.lost++;
        else (ended < killedAt ? run.beforeMs : run.afterMs).push(ended - began);
      }
    });
    await sleep(2000);
    killedAt = performance.now();
    await stop(gateways[0]!, "SIGKILL");
    await sleep(4000);
    stopLoad = true;
    await Promise.all(loops);
    return run;
  } finally {
    for (const agent of agents) await stop(agent);
    for (const gateway of gateways) await stop(gateway);
    await stopNatsServers();
  }
}

/** One chat completion at `gatewayUrl`, read to its last byte. */
async function attempt(gatewayUrl: string, body: string): Promise<Outcome> {
  let answer;
  try {
    answer = await request(`${gatewayUrl}/v1/chat/completions`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body,
    });
  } catch (error) {
    const code = (error as { code?: string }).code;
    return code !== undefined && CONNECTION_FAILURES.has(code) ? "unreachable" : "failed";
  }
  try {
    // text(), unlike dump(), rejects when the connection is cut mid-body.
    await answer.body.text();
  } catch {
    return "cut";
  }
  return answer.statusCode === 200 ? "answered" : "failed";
}
