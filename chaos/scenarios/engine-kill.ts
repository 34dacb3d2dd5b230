/**
 * 1. Engine SIGKILL mid-stream, repeated: every client streaming from it gets a clean error
 * (502, or an SSE `error` event at the end of its stream), none hangs, and the next request is
 * served.
 */
import { request } from "undici";
import { fakeAgent, stop } from "../../bench/lib/cluster.js";
import { chatBody } from "../../bench/lib/client.js";
import { killEngine } from "../lib/agent-device.js";
import { Checks } from "../lib/scenario.js";
import type { Scenario } from "../lib/scenario.js";

const STREAMS = 3;
const CLIENT_TIMEOUT_MS = 15_000;

type Ending = "clean error" | "completed" | "hung" | "broken";

export const engineKill: Scenario = {
  name: "engine SIGKILL mid-stream",
  async run({ durationS }) {
    const checks = new Checks();
    const rounds = Math.max(3, Math.round(durationS / 5));
    const agent = await fakeAgent(STREAMS, {}, { FAKE_LLAMA_TOKEN_MS: "25" });
    const endings: Record<Ending, number> = { "clean error": 0, completed: 0, hung: 0, broken: 0 };
    let servedAfter = 0;
    let notRunning = 0;
    const nextFailures: string[] = [];
    try {
      for (let round = 0; round < rounds; round++) {
        let started = 0;
        let onStarted = () => {};
        const allStarted = new Promise<void>((resolve) => (onStarted = resolve));
        const streams = Array.from({ length: STREAMS }, () =>
          stream(agent.url, () => {
            if (++started === STREAMS) onStarted();
          }),
        );
        await allStarted;
        if (!(await killEngine(agent.url))) notRunning++;
        for (const ending of await Promise.all(streams)) endings[ending]++;
        // The next request waits for the restarted server (crash backoff included).
        const next = await request(`${agent.url}/v1/chat/completions`, {
          method: "POST",
          headers: { "content-type": "application/json" },
          body: JSON.stringify(chatBody(2)),
          headersTimeout: 60_000,
        });
        const text = await next.body.text();
        if (next.statusCode === 200) servedAfter++;
        else nextFailures.push(`${next.statusCode} ${text.slice(0, 200)}`);
      }
    } finally {
      await stop(agent);
    }
    checks.expect(endings.hung === 0, `${endings.hung} client(s) hung`);
    checks.expect(notRunning === 0, `the server was not running in ${notRunning} round(s)`);
    checks.expect(endings.broken === 0, `${endings.broken} stream(s) ended without an error`);
    checks.expect(
      servedAfter === rounds,
      `the next request failed in ${rounds - servedAfter} round(s): ${nextFailures.join(" | ")}`,
    );
    return checks.outcome({
      rounds,
      streams: rounds * STREAMS,
      ...endings,
      served_after: servedAfter,
    });
  },
};

/** One streaming request; `onStarted` once tokens flow (or it ended first); how it ended. */
async function stream(url: string, onStarted: () => void): Promise<Ending> {
  let started = false;
  const onFirstEvent = () => {
    if (!started) onStarted();
    started = true;
  };
  const signal = AbortSignal.timeout(CLIENT_TIMEOUT_MS);
  try {
    const answer = await request(`${url}/v1/chat/completions`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify(chatBody(400, true)),
      signal,
    });
    if (answer.statusCode === 502) {
      await answer.body.dump();
      onFirstEvent();
      return "clean error";
    }
    let text = "";
    let first = true;
    for await (const chunk of answer.body) {
      text += (chunk as Buffer).toString();
      if (first) {
        first = false;
        onFirstEvent();
      }
    }
    if (/data: \{"error":/.test(text)) return "clean error";
    return text.includes("[DONE]") ? "completed" : "broken";
  } catch {
    return signal.aborted ? "hung" : "broken";
  } finally {
    onFirstEvent();
  }
}
