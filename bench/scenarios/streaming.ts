/**
 * P2 streaming: time to first token added per hop, and whether chunks are relayed one by one
 * (the client sees as many events, as far apart, as the upstream sends).
 */
import { fakeAgent, start, stop } from "../lib/cluster.js";
import { chatBody, timedStream } from "../lib/client.js";
import { waitForPeers } from "../lib/gateway-status.js";
import { figure, median } from "../lib/stats.js";
import type { Figure } from "../lib/stats.js";
import { upstreamOf } from "./relay.js";

export interface StreamingRow {
  path: string;
  firstTokenMs: Figure;
  events: number;
  spacingMs: Figure;
}

const TOKEN_MS = 20;
const TOKENS = 32;

export async function streaming(repeats: number): Promise<StreamingRow[]> {
  const gateway = await start("gateway", { heartbeat_interval_s: 2 });
  const agent = await fakeAgent(4, {}, { FAKE_LLAMA_TOKEN_MS: String(TOKEN_MS) }, [
    "--dispatcher-url",
    gateway.url,
  ]);
  try {
    const upstream = await upstreamOf(agent);
    await waitForPeers(
      gateway.url,
      (nodes) => nodes[0]?.state === "serving",
      "the agent to register as serving",
    );
    const rows: StreamingRow[] = [];
    for (const [path, url] of [
      ["direct to upstream", upstream.url],
      ["agent", agent.url],
      ["gateway → agent", gateway.url],
    ] as const) {
      const first: number[] = [];
      const spacing: number[] = [];
      let events = 0;
      for (let i = 0; i < repeats; i++) {
        const timing = await timedStream(`${url}/v1/chat/completions`, chatBody(TOKENS, true));
        first.push(timing.firstEventMs);
        events = timing.eventTimes.length;
        const gaps = timing.eventTimes.slice(1).map((at, index) => at - timing.eventTimes[index]!);
        spacing.push(median(gaps));
      }
      rows.push({ path, firstTokenMs: figure(first), events, spacingMs: figure(spacing) });
    }
    return rows;
  } finally {
    await stop(agent);
    await stop(gateway);
  }
}

export const STREAM_SETUP = { tokenMs: TOKEN_MS, tokens: TOKENS };
