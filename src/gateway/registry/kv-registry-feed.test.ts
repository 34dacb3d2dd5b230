import assert from "node:assert/strict";
import { after, test } from "node:test";
import { jetstreamManager } from "@nats-io/jetstream";
import { connect } from "@nats-io/transport-node";
import { openNodesBucket } from "../../core/nats/nodes-bucket.js";
import { tempDir, waitUntil } from "../../../test/helpers/launcher.js";
import { startNatsServer, stopNatsServers } from "../../../test/helpers/nats-server.js";
import { playedNode } from "../../../test/helpers/played-node.js";
import { capturingLog } from "../../../test/helpers/stand-in-tool.js";
import { KvRegistryFeed } from "./kv-registry-feed.js";
import { NodeIdentities } from "./node-identities.js";
import { NodeRegistry } from "./node-registry.js";
import { RegistryService } from "./registry-service.js";

after(stopNatsServers);

const LEASE_S = 1;

test("a watch that stalls while nodes keep putting their keys is watched anew", async (t) => {
  const nats = await startNatsServer();
  const connection = await connect({ servers: nats.url });
  const { log, lines } = capturingLog();
  const registry = new NodeRegistry({ leaseMs: LEASE_S * 1000 });
  const service = new RegistryService({
    registry,
    identities: await NodeIdentities.open(await tempDir(), 10, log),
    terms: { heartbeat_interval_s: LEASE_S, lease_s: LEASE_S },
    allowPublicAgentUrls: false,
    maxNodes: 10,
    minMessageIntervalS: 0,
    log,
  });
  const feed = new KvRegistryFeed(connection, service, LEASE_S, log);
  t.after(async () => {
    await feed.stop();
    await connection.close();
  });
  const bucket = await openNodesBucket(connection, LEASE_S);
  // Every poll puts the node's key again, as an agent's heartbeat would.
  const putUntilListed = (nodeId: string, what: string) =>
    waitUntil(
      async () => {
        await bucket.put(nodeId, JSON.stringify(playedNode(nodeId, Date.now())));
        return registry.get(nodeId);
      },
      what,
      15_000,
      200,
    );
  await putUntilListed("node-a", "the watch to deliver node-a");

  // With its consumer deleted on the server, the watch neither ends nor delivers: a stall.
  // nats.js recreates the consumer itself only once it missed two idle heartbeats, 30 s apart:
  // a minute and more, long past every lease and the deadline below.
  const stream = (await bucket.status()).streamInfo.config.name;
  const jsm = await jetstreamManager(connection);
  const consumers = await jsm.consumers.list(stream).next();
  assert.equal(consumers.length, 1, "the watch's consumer alone");
  await jsm.consumers.delete(stream, consumers[0]!.name);

  await putUntilListed("node-b", "the feed to watch again and list node-b");
  assert.ok(lines.some((line) => line.includes("no node put seen for two leases")));
});
