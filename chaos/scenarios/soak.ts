/**
 * 8. Soak: mixed load through a gateway to two agents while engines and one agent are killed at
 * random. No admitted request is lost (each completes or fails cleanly), and the resident
 * memory of the gateway and of the agent that is never killed is reported as a trend.
 */
import { fakeAgent, start, stop, tempDir } from "../../bench/lib/cluster.js";
import { waitForPeers } from "../../bench/lib/gateway-status.js";
import { killEngine } from "../lib/agent-device.js";
import { closedLoop, counts } from "../lib/load.js";
import { sampleRss, summarize } from "../lib/rss.js";
import { Checks, sleep } from "../lib/scenario.js";
import type { Scenario } from "../lib/scenario.js";

const CLIENTS = 6;
/** Time between two kills, in ms: random within this range. Engines to kill are picked at random. */
const KILL_EVERY_MS = [2000, 6000] as const;

type Kill = "engine" | "agent";

export const soak: Scenario = {
  name: "soak with random kills",
  async run({ soakS }) {
    const checks = new Checks();
    const gateway = await start("gateway", { heartbeat_interval_s: 1 });
    const join = ["--dispatcher-url", gateway.url, "--heartbeat-interval", "1"];
    const victimConfig = { node_id: "victim", state_dir: await tempDir() };
    const agents = {
      steady: await fakeAgent(2, { node_id: "steady" }, { FAKE_LLAMA_TOKEN_MS: "5" }, join),
      victim: await fakeAgent(2, victimConfig, { FAKE_LLAMA_TOKEN_MS: "5" }, join),
    };
    try {
      await waitForPeers(gateway.url, (nodes) => nodes.length === 2, "both agents to register");
      const gatewayRss = sampleRss(() => gateway.pid, 1000);
      const steadyRss = sampleRss(() => agents.steady.pid, 1000);
      const endAt = performance.now() + soakS * 1000;
      const kills: Record<Kill, number> = { engine: 0, agent: 0 };
      const killer = (async () => {
        for (let n = 0; performance.now() < endAt - KILL_EVERY_MS[1]; n++) {
          await sleep(KILL_EVERY_MS[0] + Math.random() * (KILL_EVERY_MS[1] - KILL_EVERY_MS[0]));
          // Every third kill is the victim agent's, so even the short profile kills one.
          if (n % 3 !== 1) {
            const target = Math.random() < 0.5 ? agents.steady : agents.victim;
            if (await killEngine(target.url)) kills.engine++;
          } else {
            process.kill(agents.victim.pid, "SIGKILL");
            await agents.victim.exited;
            kills.agent++;
            agents.victim = await fakeAgent(2, victimConfig, { FAKE_LLAMA_TOKEN_MS: "5" }, join);
          }
        }
      })();
      const tally = await closedLoop({
        baseUrl: gateway.url,
        next: mixedRequest,
        concurrency: CLIENTS,
        durationMs: soakS * 1000,
        clientTimeoutMs: 60_000,
        pauseAfterRejectMs: 200,
      });
      await killer;
      gatewayRss.stop();
      steadyRss.stop();
      const gatewayMemory = summarize(gatewayRss.samples());
      const steadyMemory = summarize(steadyRss.samples());

      checks.expect(tally.lost === 0, `${tally.lost} admitted request(s) lost`);
      checks.expect(
        Object.keys(tally.unexpected).length === 0,
        `unexpected answers: ${counts(tally.unexpected)}`,
      );
      checks.expect(tally.completed > 0, "nothing completed");
      checks.expect(kills.engine + kills.agent > 0, "nothing was killed");
      return checks.outcome({
        seconds: soakS,
        sent: tally.sent,
        completed: tally.completed,
        failed_cleanly: tally.failedCleanly,
        rejected: counts(tally.rejected),
        lost: tally.lost,
        engine_kills: kills.engine,
        agent_kills: kills.agent,
        gateway_rss_mib: `${gatewayMemory.firstMib}→${gatewayMemory.lastMib}`,
        gateway_rss_slope_mib_per_min: gatewayMemory.slopeMibPerMin,
        agent_rss_mib: `${steadyMemory.firstMib}→${steadyMemory.lastMib}`,
        agent_rss_slope_mib_per_min: steadyMemory.slopeMibPerMin,
      });
    } finally {
      await stop(agents.steady);
      await stop(agents.victim);
      await stop(gateway);
    }
  },
};

/** Chat by role and completions by model id, streamed and not, in turn. */
function mixedRequest(n: number): { path: string; body: Record<string, unknown> } {
  const stream = n % 2 === 0;
  return n % 4 < 2
    ? {
        path: "/v1/chat/completions",
        body: {
          model: "chat",
          messages: [{ role: "user", content: `Story ${n}` }],
          max_tokens: 24,
          stream,
        },
      }
    : {
        path: "/v1/completions",
        body: { model: "stories", prompt: `Once upon a time ${n}`, max_tokens: 24, stream },
      };
}
