/**
 * 2. Agent SIGKILL and restart: the server it ran dies with it (parent-death signal), the
 * restarted agent reaps anything its pid records name (identity-checked), and none is left.
 */
import { readFile } from "node:fs/promises";
import { fakeAgent, stop } from "../../bench/lib/cluster.js";
import { postJson } from "../../bench/lib/client.js";
import { readIdentity } from "../../src/agent/supervisor/process-identity.js";
import { Checks, sleep } from "../lib/scenario.js";
import type { Scenario } from "../lib/scenario.js";

export const agentKill: Scenario = {
  name: "agent SIGKILL and restart",
  async run({ durationS }) {
    const checks = new Checks();
    const rounds = Math.max(3, Math.round(durationS / 10));
    let orphans = 0;
    let stateDir: string | undefined;
    for (let round = 0; round < rounds; round++) {
      const agent = await fakeAgent(1, stateDir ? { state_dir: stateDir } : {});
      stateDir ??= await stateDirOf(agent.pid);
      const loaded = await postJson<{ server: { pid: number } }>(
        `${agent.url}/v1/node/models/stories/load`,
        {},
      );
      const serverPid = loaded.body.server.pid;
      const identity = await startTime(serverPid);
      // The agent alone, as the kernel's OOM killer would do it.
      process.kill(agent.pid, "SIGKILL");
      await agent.exited;
      const deadline = performance.now() + 5000;
      while (performance.now() < deadline && (await startTime(serverPid)) === identity)
        await sleep(20);
      if ((await startTime(serverPid)) === identity) orphans++;
      await stop(agent);
    }
    checks.expect(orphans === 0, `${orphans} server(s) outlived their agent`);
    return checks.outcome({ rounds, orphans });
  },
};

/** The state_dir the agent was started with, so a restart finds its pid records. */
async function stateDirOf(pid: number): Promise<string> {
  const args = (await readFile(`/proc/${pid}/cmdline`, "utf8")).split("\0");
  const config = JSON.parse(await readFile(args[args.indexOf("--config") + 1]!, "utf8")) as {
    state_dir: string;
  };
  return config.state_dir;
}

/** A process's start time, or undefined once it is gone: what tells it from a pid reuse. */
async function startTime(pid: number): Promise<string | undefined> {
  return (await readIdentity(pid))?.startTime;
}
