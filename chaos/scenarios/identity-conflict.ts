/**
 * 11. A second agent claims a live node's id, repeatedly, while traffic flows: each impostor is
 * refused (409, logged as an error by the impostor), the gateway keeps the first agent's URL,
 * and every request is served by the first agent.
 */
import { fakeAgent, start, stop } from "../../bench/lib/cluster.js";
import { chatBody, postJson } from "../../bench/lib/client.js";
import { peers, until, waitForPeers } from "../../bench/lib/gateway-status.js";
import { sumOfSeries } from "../../bench/lib/metrics-text.js";
import { Checks } from "../lib/scenario.js";
import type { Scenario } from "../lib/scenario.js";

const NODE_ID = "gpu-1";

export const identityConflict: Scenario = {
  name: "identity conflict",
  async run({ durationS }) {
    const checks = new Checks();
    const gateway = await start("gateway", { heartbeat_interval_s: 1 });
    const join = ["--dispatcher-url", gateway.url, "--heartbeat-interval", "1"];
    const owner = await fakeAgent(2, { node_id: NODE_ID }, {}, join);
    await waitForPeers(gateway.url, (nodes) => nodes.length === 1, "the first agent");
    const rounds = Math.max(3, Math.round(durationS / 3));
    let refused = 0;
    let served = 0;
    let failed = 0;
    let byImpostors = 0;
    try {
      for (let round = 0; round < rounds; round++) {
        const impostor = await fakeAgent(2, { node_id: NODE_ID }, {}, join);
        const told = await until(
          async () => impostor.output.some((line) => line.includes("belongs to another agent")),
          10_000,
        );
        if (told) refused++;
        // Traffic through two of the impostor's heartbeat intervals.
        const began = performance.now();
        while (performance.now() - began < 2000) {
          const answer = await postJson(`${gateway.url}/v1/chat/completions`, chatBody(4));
          if (answer.status === 200) served++;
          else failed++;
        }
        byImpostors += await sumOfSeries(impostor.url, "rolemesh_requests_total");
        const record = (await peers(gateway.url))?.find((node) => node.node_id === NODE_ID);
        checks.expect(record?.agent_url === owner.url, `round ${round}: the record moved`);
        await stop(impostor);
      }
      checks.expect(refused === rounds, `${rounds - refused} impostors never learned of the 409`);
      checks.expect(failed === 0, `${failed} requests failed`);
      const byOwner = await sumOfSeries(owner.url, "rolemesh_requests_total");
      checks.expect(byOwner >= served, `the owner relayed ${byOwner} of ${served} requests`);
      checks.expect(byImpostors === 0, `${byImpostors} requests reached an impostor`);
      return checks.outcome({
        impostors: rounds,
        refused,
        served,
        failed,
        by_impostors: byImpostors,
      });
    } finally {
      await stop(owner);
      await stop(gateway);
    }
  },
};
