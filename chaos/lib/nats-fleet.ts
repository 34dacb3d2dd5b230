/**
 * The fleet the NATS scenarios break: a real nats-server, two gateways and fake agents that know
 * nothing of each other but its URL, all started from the built CLI.
 */
import { fakeAgent, start, stopAll } from "../../bench/lib/cluster.js";
import type { Started } from "../../bench/lib/cluster.js";
import { startNatsServer, stopNatsServers } from "../../test/helpers/nats-server.js";
import type { NatsServer } from "../../test/helpers/nats-server.js";

export const NATS_HEARTBEAT_S = 1;

export interface NatsFleet {
  nats: NatsServer;
  /** What every process of the fleet is configured with. */
  config: { nats_url: string; heartbeat_interval_s: number };
  gateways: [Started, Started];
  agents: Started[];
}

/** NATS, two gateways and `nodes` agents named `<prefix>-<i>`. */
export async function startNatsFleet(nodes: number, prefix: string): Promise<NatsFleet> {
  const nats = await startNatsServer();
  const config = { nats_url: nats.url, heartbeat_interval_s: NATS_HEARTBEAT_S };
  const gateways: [Started, Started] = [
    await start("gateway", config),
    await start("gateway", config),
  ];
  const agents: Started[] = [];
  for (let i = 0; i < nodes; i++) {
    agents.push(await fakeAgent(2, { ...config, node_id: `${prefix}-${i}` }));
  }
  return { nats, config, gateways, agents };
}

/** Stops every process the scenario started, then NATS. */
export async function stopNatsFleet(): Promise<void> {
  await stopAll();
  await stopNatsServers();
}
