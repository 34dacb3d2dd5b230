/**
 * 2. Agent SIGKILL and restart, repeated: the server it ran dies with it (parent-death signal);
 * one that ignores SIGTERM outlives it and is stopped by the restarted agent, which finds it by
 * its pid record and checks its identity (start time) first. No server is left at the end.
 */
import { fakeAgent, stop, tempDir } from "../../bench/lib/cluster.js";
import type { Started } from "../../bench/lib/cluster.js";
import { postJson } from "../../bench/lib/client.js";
import { until } from "../../bench/lib/gateway-status.js";
import { readIdentity } from "../../src/core/process/process-identity.js";
import { Checks } from "../lib/scenario.js";
import type { Scenario } from "../lib/scenario.js";

/** Longer than the 5 s SIGTERM → SIGKILL escalation a reaping agent may need. */
const GONE_WITHIN_MS = 8000;

export const agentKill: Scenario = {
  name: "agent SIGKILL and restart",
  async run({ durationS }) {
    const checks = new Checks();
    const rounds = Math.max(4, Math.round(durationS / 10));
    const stateDir = await tempDir();
    let diedWithAgent = 0;
    let reapedByRestart = 0;
    let orphans = 0;
    for (let round = 0; round < rounds; round++) {
      // Every other server ignores SIGTERM, so the parent-death signal cannot stop it.
      const stubborn = round % 2 === 1;
      const agent = await startAgent(stateDir, stubborn);
      const server = await loadServer(agent);
      // The agent alone, as the kernel's OOM killer would do it.
      process.kill(agent.pid, "SIGKILL");
      await agent.exited;
      if (!stubborn) {
        if (await gone(server)) diedWithAgent++;
        else orphans++;
        continue;
      }
      if (await gone(server, 1000)) {
        checks.expect(false, `round ${round}: a server that ignores SIGTERM died with its agent`);
        continue;
      }
      const next = await startAgent(stateDir, false);
      if (await gone(server)) reapedByRestart++;
      else orphans++;
      await stop(next);
    }
    checks.expect(orphans === 0, `${orphans} server(s) outlived their agent and its restart`);
    return checks.outcome({
      rounds,
      died_with_agent: diedWithAgent,
      reaped_by_restart: reapedByRestart,
      orphans,
    });
  },
};

function startAgent(stateDir: string, stubborn: boolean): Promise<Started> {
  return fakeAgent(1, { state_dir: stateDir }, stubborn ? { FAKE_LLAMA_IGNORE_SIGTERM: "1" } : {});
}

/** Loads the model; the server's pid and start time, which tell it from a reused pid. */
async function loadServer(agent: Started): Promise<{ pid: number; startTime: string }> {
  const loaded = await postJson<{ server: { pid: number } }>(
    `${agent.url}/v1/node/models/stories/load`,
    {},
  );
  const pid = loaded.body.server.pid;
  const identity = await readIdentity(pid);
  if (!identity) throw new Error(`server ${pid} was gone as soon as it was ready`);
  return { pid, startTime: identity.startTime };
}

/** True once no process has that pid and start time, polled until `withinMs`. */
function gone(server: { pid: number; startTime: string }, withinMs = GONE_WITHIN_MS) {
  return until(
    async () => (await readIdentity(server.pid))?.startTime !== server.startTime,
    withinMs,
  );
}
