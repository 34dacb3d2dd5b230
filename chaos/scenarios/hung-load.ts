/**
 * 10. A server that hangs while it loads, over and over: every request waiting for it gets a
 * clean answer within the startup timeout (none waits longer) — 503 `model_loading_timeout`,
 * or 502 `upstream_error` saying the server was killed when the ceiling passes while it waits —
 * the server is killed at the load ceiling and the device shows `failed` with backoff, so
 * requests during the backoff are refused at once (503 `no_capacity`, Retry-After) instead of
 * each waiting out another load.
 */
import { fakeAgent, stop } from "../../bench/lib/cluster.js";
import { chatBody, postJson } from "../../bench/lib/client.js";
import { readIdentity } from "../../src/core/process/process-identity.js";
import { firstDevice } from "../lib/agent-device.js";
import { Checks } from "../lib/scenario.js";
import type { Scenario } from "../lib/scenario.js";

const STARTUP_TIMEOUT_S = 1;
const LOAD_CEILING_S = 3;

export const hungLoad: Scenario = {
  name: "hung load",
  async run({ durationS }) {
    const checks = new Checks();
    const agent = await fakeAgent(
      2,
      {
        llama_server_startup_timeout_s: STARTUP_TIMEOUT_S,
        llama_server_load_ceiling_s: LOAD_CEILING_S,
      },
      { FAKE_LLAMA_LOAD_MS: "3600000" },
    );
    const pids = new Set<number>();
    let requests = 0;
    let timedOut = 0;
    let inBackoff = 0;
    let killedWhileWaiting = 0;
    let other = "";
    let slowestMs = 0;
    let killedAtCeiling = 0;
    try {
      const began = performance.now();
      while (performance.now() - began < Math.max(durationS, 2 * LOAD_CEILING_S) * 1000) {
        const sent = performance.now();
        const answer = await postJson<{ error?: { code: string; message: string } }>(
          `${agent.url}/v1/chat/completions`,
          chatBody(4),
        );
        requests++;
        slowestMs = Math.max(slowestMs, performance.now() - sent);
        const code = answer.status === 503 ? answer.body.error?.code : undefined;
        if (code === "model_loading_timeout") timedOut++;
        if (code === "no_capacity" && answer.headers["retry-after"]) inBackoff++;
        else if (answer.status === 502 && /was killed/.test(answer.body.error?.message ?? ""))
          killedWhileWaiting++;
        else if (code !== "model_loading_timeout")
          other ||= `${answer.status} ${JSON.stringify(answer.body)}`;
        const device = await firstDevice(agent.url);
        if (device?.server.pid) pids.add(device.server.pid);
        if (/was killed/.test(device?.last_error?.message ?? "")) killedAtCeiling++;
      }
      const device = await firstDevice(agent.url);
      const clean = timedOut + inBackoff + killedWhileWaiting;
      checks.expect(
        clean === requests,
        `${requests - clean} of ${requests} not a clean 503 (${other})`,
      );
      checks.expect(timedOut > 0 && inBackoff > 0, "no startup timeout, or no backoff, seen");
      // The startup timeout, plus room for a loaded machine; never a second load's worth.
      checks.expect(
        slowestMs < (STARTUP_TIMEOUT_S * 2 + 1) * 1000,
        `a request waited ${Math.round(slowestMs)} ms for a ${STARTUP_TIMEOUT_S} s startup timeout`,
      );
      checks.expect(killedAtCeiling > 0, "no hung server was killed at the load ceiling");
      checks.expect(
        device?.server.state === "failed" || device?.server.state === "starting",
        `the device shows ${device?.server.state}`,
      );
      // Backoff: far fewer servers than requests, each one gone once replaced.
      checks.expect(pids.size < requests, `${pids.size} servers for ${requests} requests`);
      const current = device?.server.pid;
      let leftover = 0;
      for (const pid of pids) if (pid !== current && (await readIdentity(pid))) leftover++;
      checks.expect(leftover === 0, `${leftover} hung servers still run`);
      return checks.outcome({
        requests,
        startup_timeouts: timedOut,
        refused_in_backoff: inBackoff,
        killed_while_waiting: killedWhileWaiting,
        slowest_ms: Math.round(slowestMs),
        servers_started: pids.size,
        leftover,
      });
    } finally {
      await stop(agent);
    }
  },
};
