/**
 * 1b. Engine SIGKILL while it loads, repeated: the requests waiting for it fail at once with a
 * clean 502 instead of waiting out the startup timeout, the device never goes on showing the
 * dead server as `starting`, and the next request starts a new server and is served.
 */
import { fakeAgent, stop } from "../../bench/lib/cluster.js";
import { chatBody, postJson } from "../../bench/lib/client.js";
import { until } from "../../bench/lib/gateway-status.js";
import { firstDevice } from "../lib/agent-device.js";
import { Checks } from "../lib/scenario.js";
import type { Scenario } from "../lib/scenario.js";

/** Long enough to kill the server mid-load; far shorter than the startup timeout. */
const LOAD_MS = 1500;
const STARTUP_TIMEOUT_S = 30;
const WAITING = 2;

export const engineKillLoading: Scenario = {
  name: "engine SIGKILL while loading",
  async run({ durationS }) {
    const checks = new Checks();
    const rounds = Math.max(3, Math.round(durationS / 5));
    const agent = await fakeAgent(
      WAITING,
      { llama_server_startup_timeout_s: STARTUP_TIMEOUT_S },
      { FAKE_LLAMA_LOAD_MS: String(LOAD_MS) },
    );
    const device = () => firstDevice(agent.url);
    let cleanFailures = 0;
    let slowestFailureMs = 0;
    let stuckStarting = 0;
    let servedAfter = 0;
    try {
      for (let round = 0; round < rounds; round++) {
        // From a stopped device, so the requests below wait for a load.
        await postJson(`${agent.url}/v1/node/models/stories/unload`, {});
        const waiting = Array.from({ length: WAITING }, () =>
          postJson<{ error?: { code: string } }>(`${agent.url}/v1/chat/completions`, chatBody(4)),
        );
        // Both admitted and the server loading: both wait for this very server.
        let pid: number | null | undefined;
        await until(async () => {
          const current = await device();
          const loading = current?.server.state === "starting";
          pid = loading && current.queue.in_flight === WAITING ? current.server.pid : undefined;
          return Boolean(pid);
        }, 10_000);
        if (!pid) throw new Error(`round ${round}: the server never showed as starting`);
        const killedAt = performance.now();
        process.kill(pid, "SIGKILL");
        for (const answer of await Promise.all(waiting)) {
          slowestFailureMs = Math.max(slowestFailureMs, performance.now() - killedAt);
          if (answer.status === 502 && answer.body.error?.code === "upstream_error")
            cleanFailures++;
        }
        const after = (await device())?.server;
        if (after?.state === "starting" && after.pid === pid) stuckStarting++;
        const next = await postJson(`${agent.url}/v1/chat/completions`, chatBody(4));
        if (next.status === 200) servedAfter++;
      }
    } finally {
      await stop(agent);
    }
    checks.expect(
      cleanFailures === rounds * WAITING,
      `${rounds * WAITING - cleanFailures} waiting request(s) did not get a 502 upstream_error`,
    );
    checks.expect(
      slowestFailureMs < (STARTUP_TIMEOUT_S * 1000) / 3,
      `a waiting request failed only after ${Math.round(slowestFailureMs)} ms`,
    );
    checks.expect(stuckStarting === 0, `the device stayed starting in ${stuckStarting} round(s)`);
    checks.expect(servedAfter === rounds, `the next request failed in ${rounds - servedAfter}`);
    return checks.outcome({
      rounds,
      waiting_failed_cleanly: cleanFailures,
      slowest_failure_ms: Math.round(slowestFailureMs),
      stuck_starting: stuckStarting,
      served_after: servedAfter,
    });
  },
};
