/**
 * 14. NATS restarted under load, keeping its store and then losing it: requests keep flowing
 * through both gateways (the data plane is HTTP) with none admitted lost, and every node is
 * heard from again on every gateway within about one heartbeat interval, never removed.
 */
import type { Started } from "../../bench/lib/cluster.js";
import { chatBody } from "../../bench/lib/client.js";
import { peers, until } from "../../bench/lib/gateway-status.js";
import { NATS_HEARTBEAT_S, startNatsFleet, stopNatsFleet } from "../lib/nats-fleet.js";
import { addTally, closedLoop, emptyTally } from "../lib/load.js";
import { Checks } from "../lib/scenario.js";
import type { Scenario } from "../lib/scenario.js";

const NODES = 2;

export const natsRestart: Scenario = {
  name: "NATS restart",
  async run({ durationS }) {
    const checks = new Checks();
    try {
      const { nats, gateways } = await startNatsFleet(NODES, "nats");
      const everyoneSeen = (after: number) =>
        Promise.all(
          gateways.map(async (gateway) => {
            const nodes = await peers(gateway.url);
            return (
              nodes?.length === NODES && nodes.every((node) => Date.parse(node.last_seen) > after)
            );
          }),
        ).then((seen) => seen.every(Boolean));
      checks.expect(await until(() => everyoneSeen(0), 15_000), "the fleet never formed");
      const registeredAt = await registrations(gateways);

      const tally = emptyTally();
      let slowestBackMs = 0;
      const load = gateways.map((gateway) =>
        closedLoop({
          baseUrl: gateway.url,
          next: () => ({ path: "/v1/chat/completions", body: chatBody(4) }),
          concurrency: 2,
          durationMs: Math.max(durationS, 6) * 1000,
          clientTimeoutMs: 15_000,
        }),
      );
      for (const loseStore of [false, true]) {
        const restartedAt = Date.now();
        await nats.restart({ loseStore });
        const back = await until(() => everyoneSeen(restartedAt), 15_000);
        checks.expect(
          back,
          `after a restart${loseStore ? " without its store" : ""}, not all back`,
        );
        slowestBackMs = Math.max(slowestBackMs, Date.now() - restartedAt);
      }
      for (const result of await Promise.all(load)) addTally(tally, result);
      checks.expect(
        tally.lost === 0 && tally.failedCleanly === 0,
        `lost ${tally.lost}, failed ${tally.failedCleanly}`,
      );
      checks.expect(
        JSON.stringify(await registrations(gateways)) === JSON.stringify(registeredAt),
        "a node was removed and registered again",
      );
      checks.expect(
        slowestBackMs < (NATS_HEARTBEAT_S * 3 + 2) * 1000,
        `nodes heard from again only after ${slowestBackMs} ms`,
      );
      return checks.outcome({
        sent: tally.sent,
        completed: tally.completed,
        lost: tally.lost,
        back_after_ms: slowestBackMs,
      });
    } finally {
      await stopNatsFleet();
    }
  },
};

/** When each gateway registered each node: unchanged unless a node was removed meanwhile. */
async function registrations(gateways: Started[]): Promise<string[][]> {
  return Promise.all(
    gateways.map(async (gateway) =>
      ((await peers(gateway.url)) ?? [])
        .map((node) => `${node.node_id}@${node.registered_at}`)
        .sort(),
    ),
  );
}
