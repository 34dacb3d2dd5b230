/**
 * P9 routing by prompt prefix (issue 21) with the real llama-server of `rolemesh engine build`:
 * a gateway and four agents on stories260K, one thread each, two slots per server. Sessions with
 * long system prompts of their own talk in turns, several at once, so that evaluating the prompt
 * dominates the time to the first token; the same sessions run once with `routing:
 * prefix_affinity` and once with `least_load`, on fresh clusters. A skew case sends one prefix
 * from every session: no node may take more than the load bound.
 */
import { buildFor } from "../../src/agent/engines/build/engine-cache.js";
import type { EngineBuild } from "../../src/agent/engines/build/engine-cache.js";
import { start, stop, STORIES_MODEL } from "../lib/cluster.js";
import type { Started } from "../lib/cluster.js";
import { postJson, timedStream } from "../lib/client.js";
import { waitForPeers } from "../lib/gateway-status.js";
import { figure, percentile } from "../lib/stats.js";
import type { Figure } from "../lib/stats.js";

const AGENTS = 4;
const SESSIONS = 8;
const TURNS = 4;
const LOAD_FACTOR = 1.25;

export interface AffinityModeResult {
  routing: "prefix_affinity" | "least_load";
  /** Time to the first token of turns after the first (whose prefix a node may hold), ms. */
  ttftMs: { p50: number; p99: number };
  /** The same for first turns, which no node can have cached. */
  firstTurnTtftMs: number;
  /** Answered turns per second over the whole run. */
  turnsPerSecond: number;
  /** Turns that went to the node the session's previous turn went to. */
  sameNodeShare: number;
}

export interface AffinityResult {
  modes: AffinityModeResult[];
  /** The skew case: every session with one prefix, all at once. */
  skew: { requests: number; perNode: Record<string, number>; bound: number };
  /** The runs' medians of p50 TTFT (later turns), affinity over least load. */
  ttftRatio: Figure;
}

export type AffinitySection = AffinityResult | { skipped: string };

/** A system prompt of its own for session `id`: long enough that evaluating it dominates. */
function systemPrompt(id: number): string {
  const story = `You are storyteller ${id}. You tell short stories about a little cat named Tom ${id} who lives in a small house near the big green park with his friend, a happy dog. `;
  return story.repeat(12);
}

function turnBody(session: number, turn: number, systemOf = systemPrompt) {
  const messages: { role: string; content: string }[] = [
    { role: "system", content: systemOf(session) },
  ];
  for (let i = 0; i <= turn; i++) {
    if (i > 0) messages.push({ role: "assistant", content: "Tom ran to the park." });
    messages.push({ role: "user", content: i === 0 ? "Tell me a story." : "What happened next?" });
  }
  return { model: "stories", messages, max_tokens: 8, temperature: 0, stream: true };
}

export async function prefixAffinity(options: { runs: number }): Promise<AffinitySection> {
  const build = await buildFor("cpu");
  if (!build) return { skipped: "no engine build (`rolemesh engine build` makes one)" };
  const runs: Record<AffinityModeResult["routing"], AffinityModeResult[]> = {
    prefix_affinity: [],
    least_load: [],
  };
  for (let run = 0; run < options.runs; run++) {
    for (const routing of ["prefix_affinity", "least_load"] as const) {
      runs[routing].push(
        await withCluster(build, routing, (gateway) => sessions(gateway, routing)),
      );
    }
  }
  const skew = await withCluster(build, "prefix_affinity", skewCase);
  // Paired run by run (the modes took turns), before each mode's runs are sorted.
  const ttftRatio = figure(
    runs.prefix_affinity.map((result, i) => result.ttftMs.p50 / runs.least_load[i]!.ttftMs.p50),
  );
  const middle = (results: AffinityModeResult[]) =>
    [...results].sort((a, b) => a.ttftMs.p50 - b.ttftMs.p50)[Math.floor(results.length / 2)]!;
  return { modes: [middle(runs.prefix_affinity), middle(runs.least_load)], skew, ttftRatio };
}

/** A gateway with `routing` and four agents with the model loaded, for `body`. */
async function withCluster<T>(
  build: EngineBuild,
  routing: AffinityModeResult["routing"],
  body: (gateway: Started) => Promise<T>,
): Promise<T> {
  const gateway = await start("gateway", {
    heartbeat_interval_s: 1,
    routing,
    affinity_load_factor: LOAD_FACTOR,
  });
  const agents: Started[] = [];
  try {
    for (let i = 0; i < AGENTS; i++) {
      agents.push(
        await start(
          "agent",
          {
            node_id: `node-${i}`,
            llama_server_bin: build.llamaServer,
            max_pending_requests_per_device: 16,
            models: [
              {
                model_id: "stories",
                path: STORIES_MODEL,
                ctx_size: 4096,
                parallel: 2,
                threads: 1,
              },
            ],
          },
          ["--dispatcher-url", gateway.url, "--heartbeat-interval", "1"],
        ),
      );
    }
    for (const agent of agents) {
      const loaded = await postJson(`${agent.url}/v1/node/models/stories/load`, {});
      if (loaded.status !== 200) throw new Error(`load answered ${loaded.status}`);
    }
    await waitForPeers(
      gateway.url,
      (nodes) => nodes.length === AGENTS && nodes.every((node) => node.models[0]?.loaded_on.length),
      "every agent to report the model loaded",
    );
    return await body(gateway);
  } finally {
    for (const agent of agents) await stop(agent);
    await stop(gateway);
  }
}

/** Every session at once, each its turns one after another. */
async function sessions(
  gateway: Started,
  routing: AffinityModeResult["routing"],
): Promise<AffinityModeResult> {
  const later: number[] = [];
  const first: number[] = [];
  let sameNode = 0;
  const began = performance.now();
  await Promise.all(
    Array.from({ length: SESSIONS }, async (_, session) => {
      let previous: string | undefined;
      for (let turn = 0; turn < TURNS; turn++) {
        const answer = await timedStream(
          `${gateway.url}/v1/chat/completions`,
          turnBody(session, turn),
        );
        if (answer.status !== 200) throw new Error(`a turn answered ${answer.status}`);
        const ttft = answer.tokenTimes[0] ?? answer.firstEventMs;
        (turn === 0 ? first : later).push(ttft);
        const node = String(answer.headers["x-rolemesh-node"]);
        if (turn > 0 && node === previous) sameNode++;
        previous = node;
      }
    }),
  );
  const seconds = (performance.now() - began) / 1000;
  return {
    routing,
    ttftMs: { p50: percentile(later, 50), p99: percentile(later, 99) },
    firstTurnTtftMs: percentile(first, 50),
    turnsPerSecond: (SESSIONS * TURNS) / seconds,
    sameNodeShare: sameNode / (SESSIONS * (TURNS - 1)),
  };
}

/** One prefix for every session, all at once: where each request went, and the bound. */
async function skewCase(gateway: Started): Promise<AffinityResult["skew"]> {
  const requests = SESSIONS * 2;
  const perNode: Record<string, number> = {};
  await Promise.all(
    Array.from({ length: requests }, async () => {
      const answer = await timedStream(
        `${gateway.url}/v1/chat/completions`,
        turnBody(0, 0, () => systemPrompt(0)),
      );
      if (answer.status !== 200) throw new Error(`a request answered ${answer.status}`);
      const node = String(answer.headers["x-rolemesh-node"]);
      perNode[node] = (perNode[node] ?? 0) + 1;
    }),
  );
  return { requests, perNode, bound: Math.ceil((LOAD_FACTOR * requests) / AGENTS) };
}
