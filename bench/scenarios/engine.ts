/**
 * P7 engine: decode tokens/s on stories260K through the agent, with the embedded engine and
 * llama-server on the same model and threads — `LLAMA_SERVER_BIN`, else the CPU build of
 * `rolemesh engine build` when there is one.
 */
import { buildFor } from "../../src/agent/engines/build/engine-cache.js";
import { start, stop, STORIES_MODEL } from "../lib/cluster.js";
import { chatBody, timedStream } from "../lib/client.js";
import { figure } from "../lib/stats.js";
import type { Figure } from "../lib/stats.js";

export interface EngineRow {
  engine: string;
  threads: number;
  tokensPerSecond: Figure;
  firstTokenMs: Figure;
}

const TOKENS = 200;

export async function engineSpeed(repeats: number): Promise<EngineRow[]> {
  const engines: [string, Record<string, unknown>][] = [["embedded", { engine: "embedded" }]];
  const llamaServer = process.env.LLAMA_SERVER_BIN ?? (await buildFor("cpu"))?.llamaServer;
  if (llamaServer) {
    engines.push(["llama-server", { engine: "llama-server", llama_server_bin: llamaServer }]);
  } else {
    process.stderr.write(
      "bench: no llama-server (rolemesh engine build makes one); embedded only\n",
    );
  }
  const rows: EngineRow[] = [];
  for (const [name, config] of engines) {
    for (const threads of [1, 2]) {
      // One engine at a time: ggml busy-waits, two would slow each other down.
      const agent = await start("agent", {
        ...config,
        models: [{ model_id: "stories", path: STORIES_MODEL, ctx_size: 512, threads }],
      });
      try {
        await timedStream(`${agent.url}/v1/chat/completions`, chatBody(8, true)); // load, warm up
        const rates: number[] = [];
        const first: number[] = [];
        for (let i = 0; i < repeats; i++) {
          const timing = await timedStream(`${agent.url}/v1/chat/completions`, {
            ...chatBody(TOKENS, true),
            seed: i,
          });
          // Decode speed: tokens after the first, over the time from the first to the last.
          const times = timing.tokenTimes;
          rates.push(((times.length - 1) * 1000) / (times.at(-1)! - times[0]!));
          first.push(timing.firstEventMs);
        }
        rows.push({
          engine: name,
          threads,
          tokensPerSecond: figure(rates),
          firstTokenMs: figure(first),
        });
      } finally {
        await stop(agent);
      }
    }
  }
  return rows;
}
