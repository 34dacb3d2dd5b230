/**
 * 3. Gateway restart: every node back in the registry within one heartbeat interval with no
 * action by anyone; a blip of the gateway (paused even longer than the lease) marks no node dead,
 * and neither does a node that stops for less than the lease.
 */
import { request } from "undici";
import { fakeAgent, start, stop } from "../../bench/lib/cluster.js";
import type { Started } from "../../bench/lib/cluster.js";
import { peers, until } from "../../bench/lib/gateway-status.js";
import { Checks, sleep } from "../lib/scenario.js";
import type { Scenario } from "../lib/scenario.js";

const HEARTBEAT_S = 1;
const NODES = 3;

export const gatewayRestart: Scenario = {
  name: "gateway restart and blip",
  async run() {
    const checks = new Checks();
    const port = 18000 + Math.floor(Math.random() * 1000);
    const config = { listen_port: port, heartbeat_interval_s: HEARTBEAT_S };
    let gateway = await start("gateway", config);
    const agents: Started[] = [];
    try {
      for (let i = 0; i < NODES; i++) {
        agents.push(
          await fakeAgent(1, { node_id: `chaos-${i}` }, {}, ["--dispatcher-url", gateway.url]),
        );
      }
      await until(async () => (await peers(gateway.url))?.length === NODES, 10_000);

      // Restart: SIGKILL, start again on the same address, time until all are back.
      await stop(gateway, "SIGKILL");
      gateway = await start("gateway", config);
      const began = performance.now();
      const back = await until(async () => (await peers(gateway.url))?.length === NODES, 10_000);
      const backMs = performance.now() - began;
      checks.expect(
        back,
        `only ${(await peers(gateway.url))?.length ?? 0} of ${NODES} nodes came back`,
      );
      checks.expect(
        backMs <= HEARTBEAT_S * 1000 + 500,
        `nodes came back after ${Math.round(backMs)} ms`,
      );

      // Blip: the gateway stops for longer than the lease (3 intervals), then goes on.
      const removed = watchRemovals(gateway.url);
      await sleep(200);
      process.kill(gateway.pid, "SIGSTOP");
      await sleep(3 * HEARTBEAT_S * 1000 + 1500);
      process.kill(gateway.pid, "SIGCONT");
      await sleep(2000);
      removed.stop();
      checks.expect(
        removed.count() === 0,
        `${removed.count()} node(s) marked dead after a blip (${removed.reasons()})`,
      );
      checks.expect((await peers(gateway.url))?.length === NODES, "nodes missing after the blip");

      // Node blip: one agent stops for less than the lease, misses heartbeats, goes on.
      const nodeBlip = watchRemovals(gateway.url);
      const paused = agents[0]!;
      process.kill(paused.pid, "SIGSTOP");
      await sleep(3 * HEARTBEAT_S * 1000 - 800);
      process.kill(paused.pid, "SIGCONT");
      await sleep(2 * HEARTBEAT_S * 1000);
      nodeBlip.stop();
      checks.expect(
        nodeBlip.count() === 0,
        `a node paused for less than the lease was marked dead (${nodeBlip.reasons()})`,
      );
      return checks.outcome({
        back_after_ms: Math.round(backMs),
        removed_by_gateway_blip: removed.count(),
        removed_by_node_blip: nodeBlip.count(),
      });
    } finally {
      for (const agent of agents) await stop(agent);
      await stop(gateway);
    }
  },
};

/** Counts `node_removed` events on the gateway's event stream. */
function watchRemovals(gatewayUrl: string): {
  count(): number;
  reasons(): string;
  stop(): void;
} {
  const controller = new AbortController();
  const reasons: string[] = [];
  void (async () => {
    const answer = await request(`${gatewayUrl}/api/events`, { signal: controller.signal });
    for await (const chunk of answer.body) {
      for (const match of (chunk as Buffer)
        .toString()
        .matchAll(/"type":"node_removed".*?"reason":"([^"]*)"/g)) {
        reasons.push(match[1] ?? "?");
      }
    }
  })().catch(() => undefined);
  return {
    count: () => reasons.length,
    reasons: () => [...new Set(reasons)].join(", "),
    stop: () => controller.abort(),
  };
}
