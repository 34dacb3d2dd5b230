/**
 * 15. One of two gateways on NATS SIGKILLed under load: clients that know both gateways (as a
 * load balancer or a client with two URLs would) send a request again to the other one when
 * theirs fails before answering; no request is lost, the survivor keeps the whole fleet, and a
 * gateway started again sees it too.
 */
import { request } from "undici";
import { start, stop } from "../../bench/lib/cluster.js";
import { chatBody } from "../../bench/lib/client.js";
import { peers, until } from "../../bench/lib/gateway-status.js";
import { startNatsFleet, stopNatsFleet } from "../lib/nats-fleet.js";
import { Checks, sleep } from "../lib/scenario.js";
import type { Scenario } from "../lib/scenario.js";

const NODES = 2;
const CLIENTS = 4;

export const gatewayKill: Scenario = {
  name: "gateway kill on NATS",
  async run({ durationS }) {
    const checks = new Checks();
    try {
      const fleet = await startNatsFleet(NODES, "kill");
      const [doomed, survivor] = fleet.gateways;
      const fleetOn = async (url: string) => (await peers(url))?.length === NODES;
      checks.expect(
        await until(
          async () => (await fleetOn(doomed.url)) && (await fleetOn(survivor.url)),
          15_000,
        ),
        "the fleet never formed",
      );
      const urls = [doomed.url, survivor.url];
      const counts = { sent: 0, completed: 0, movedOver: 0, lost: 0 };
      const endAt = performance.now() + Math.max(durationS, 4) * 1000;
      const client = async (index: number) => {
        while (performance.now() < endAt) {
          counts.sent++;
          const outcome = await withFailover(urls, index);
          if (outcome === "lost") counts.lost++;
          else counts.completed++;
          if (outcome === "moved over") counts.movedOver++;
        }
      };
      const load = Promise.all(Array.from({ length: CLIENTS }, (_, i) => client(i)));
      await sleep(1000);
      await stop(doomed, "SIGKILL");
      await load;
      checks.expect(counts.lost === 0, `${counts.lost} requests lost`);
      checks.expect(counts.movedOver > 0, "no request had to move: the kill came too late");
      checks.expect(await fleetOn(survivor.url), "the survivor lost nodes");
      const again = await start("gateway", fleet.config);
      checks.expect(await until(() => fleetOn(again.url), 10_000), "a new gateway missed nodes");
      return checks.outcome({
        sent: counts.sent,
        completed: counts.completed,
        moved_over: counts.movedOver,
        lost: counts.lost,
      });
    } finally {
      await stopNatsFleet();
    }
  },
};

/**
 * One chat request, to the client's gateway first and, if that one fails before answering
 * (refused, reset), to the other: what a client with two gateway URLs does.
 */
async function withFailover(
  urls: string[],
  index: number,
): Promise<"served" | "moved over" | "lost"> {
  for (let attempt = 0; attempt < urls.length; attempt++) {
    const url = urls[(index + attempt) % urls.length]!;
    try {
      const answer = await request(`${url}/v1/chat/completions`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify(chatBody(4)),
      });
      const text = await answer.body.text();
      if (answer.statusCode === 200 && text.includes("choices")) {
        return attempt === 0 ? "served" : "moved over";
      }
      return "lost";
    } catch {
      // This gateway is gone: the next one.
    }
  }
  return "lost";
}
