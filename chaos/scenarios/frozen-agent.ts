/**
 * 13. An agent frozen with SIGSTOP while traffic flows (the kernel still accepts its
 * connections, so nothing fails; it just never answers): no client waits much past the
 * gateway's first-byte deadline, every request is served by the other node, and once thawed
 * (SIGCONT) the agent serves again. Repeated.
 */
import { fakeAgent, start, stop } from "../../bench/lib/cluster.js";
import { chatBody, postJson } from "../../bench/lib/client.js";
import { peers, until, waitForPeers } from "../../bench/lib/gateway-status.js";
import { Checks } from "../lib/scenario.js";
import type { Scenario } from "../lib/scenario.js";

const FIRST_BYTE_TIMEOUT_S = 3;

export const frozenAgent: Scenario = {
  name: "frozen agent",
  async run({ durationS }) {
    const checks = new Checks();
    // A lease far longer than the deadline: the deadline, not the lease, must free the clients.
    const gateway = await start("gateway", {
      heartbeat_interval_s: 1,
      lease_s: 60,
      first_byte_timeout_s: FIRST_BYTE_TIMEOUT_S,
    });
    const join = ["--dispatcher-url", gateway.url, "--heartbeat-interval", "1"];
    const frozen = await fakeAgent(2, { node_id: "frozen" }, {}, join);
    const steady = await fakeAgent(2, { node_id: "steady" }, {}, join);
    const rounds = Math.max(2, Math.round(durationS / 5));
    let served = 0;
    let failed = 0;
    let slowestMs = 0;
    let thawedServed = 0;
    try {
      for (let round = 0; round < rounds; round++) {
        await until(async () => await servedBy(gateway.url, "frozen"), 30_000);
        process.kill(frozen.pid, "SIGSTOP");
        const began = performance.now();
        while (performance.now() - began < 2 * FIRST_BYTE_TIMEOUT_S * 1000) {
          const answers = await Promise.all(
            Array.from({ length: 4 }, async () => {
              const sent = performance.now();
              const answer = await postJson(`${gateway.url}/v1/chat/completions`, chatBody(4));
              slowestMs = Math.max(slowestMs, performance.now() - sent);
              return answer;
            }),
          );
          for (const answer of answers) {
            if (answer.status === 200 && answer.headers["x-rolemesh-node"] === "steady") served++;
            else failed++;
          }
        }
        process.kill(frozen.pid, "SIGCONT");
        await waitForPeers(gateway.url, (nodes) => nodes.length === 2, "the thawed agent", 30_000);
        if (await until(async () => await servedBy(gateway.url, "frozen"), 30_000)) thawedServed++;
      }
      checks.expect(failed === 0, `${failed} requests failed or went to the frozen agent`);
      checks.expect(
        slowestMs < (FIRST_BYTE_TIMEOUT_S * 1.5 + 1) * 1000,
        `a client waited ${Math.round(slowestMs)} ms for a ${FIRST_BYTE_TIMEOUT_S} s deadline`,
      );
      checks.expect(thawedServed === rounds, `thawed, it served in ${thawedServed} of ${rounds}`);
      return checks.outcome({ rounds, served, failed, slowest_ms: Math.round(slowestMs) });
    } finally {
      process.kill(frozen.pid, "SIGCONT");
      await stop(frozen);
      await stop(steady);
      await stop(gateway);
    }
  },
};

let conversations = 0;

/**
 * Sends one request of a new conversation (each is routed by its own prefix) and tells
 * whether `nodeId` answered it (both nodes serve `stories`).
 */
async function servedBy(gatewayUrl: string, nodeId: string): Promise<boolean> {
  if (!(await peers(gatewayUrl))?.some((node) => node.node_id === nodeId)) return false;
  const body = chatBody(4, false, `Once upon a time, in conversation ${conversations++}`);
  const answer = await postJson(`${gatewayUrl}/v1/chat/completions`, body);
  return answer.status === 200 && answer.headers["x-rolemesh-node"] === nodeId;
}
