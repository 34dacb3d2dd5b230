/**
 * NATS credentials and permissions (issue 18): the shipped `configs/nats-server.conf`, run by a
 * real nats-server, lets a node register, answer its commands and answer for its operations,
 * and keeps it from registering as another node or reading another node's commands. Off
 * loopback, a process without NATS credentials refuses to start.
 */
import assert from "node:assert/strict";
import { writeFile } from "node:fs/promises";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { Kvm } from "@nats-io/kv";
import { connect } from "@nats-io/transport-node";
import type { NatsConnection } from "@nats-io/transport-node";
import { NODES_BUCKET } from "../src/protocol/nats.js";
import type { StatusResponse } from "../src/protocol/registry.js";
import type { OperationStatus } from "../src/protocol/operations.js";
import { startFileServer } from "./helpers/file-server.js";
import { postJson } from "./helpers/http-client.js";
import type { AgentProcess } from "./helpers/launcher.js";
import {
  ROOT,
  runCli,
  startAgent,
  startGateway,
  stopAgent,
  tempDir,
  testModel,
  waitUntil,
} from "./helpers/launcher.js";
import { startNatsServer, stopNatsServers } from "./helpers/nats-server.js";
import type { NatsServer } from "./helpers/nats-server.js";
import { playedNode } from "./helpers/played-node.js";

after(stopNatsServers);
const GATEWAY_PASSWORD = "gateway-password-for-tests";
const NODE_PASSWORD = "node-a-password-for-tests";

describe("the shipped NATS permissions", () => {
  let nats: NatsServer;
  let gateway: AgentProcess;
  let agent: AgentProcess;
  let asNode: NatsConnection;

  before(async () => {
    nats = await startNatsServer({
      config: join(ROOT, "configs/nats-server.conf"),
      env: {
        ROLEMESH_NATS_GATEWAY_PASSWORD: GATEWAY_PASSWORD,
        ROLEMESH_NATS_NODE_A_PASSWORD: NODE_PASSWORD,
      },
    });
    const common = { nats_url: nats.url, heartbeat_interval_s: 1 };
    gateway = await startGateway({
      config: { ...common, nats_user: "gateway", nats_password: GATEWAY_PASSWORD },
    });
    agent = await startAgent({
      config: { ...common, node_id: "node-a", nats_user: "node-a", models: [testModel()] },
      env: { ROLEMESH_NATS_PASSWORD: NODE_PASSWORD },
    });
    asNode = await connect({
      servers: nats.url,
      user: "node-a",
      pass: NODE_PASSWORD,
      inboxPrefix: "_INBOX.node-a",
    });
  });

  after(async () => {
    await asNode.close();
    await stopAgent(agent);
    await stopAgent(gateway);
  });

  test("a node with its own user registers and answers the commands sent to it", async () => {
    await waitUntil(
      async () =>
        (await gateway.json<StatusResponse>("/api/status")).peers.some(
          (peer) => peer.node_id === "node-a",
        ),
      "node-a to register",
    );
    const drained = await postJson(`${gateway.url}/api/nodes/node-a/commands/node.drain`, {});
    assert.equal(drained.status, 200, drained.text);
    const resumed = await postJson(`${gateway.url}/api/nodes/node-a/commands/node.resume`, {});
    assert.equal(resumed.status, 200, resumed.text);

    // Its operations answer by their id: status and cancel reach it through its permissions.
    const files = await startFileServer();
    files.files.set("/m.gguf", { body: Buffer.alloc(1 << 20), hold: new Promise(() => {}) });
    const started = await postJson(`${gateway.url}/api/nodes/node-a/commands/model.install`, {
      model_id: "held",
      url: `${files.url}/m.gguf`,
    });
    assert.equal(started.status, 202, started.text);
    const operation = `${gateway.url}/api/operations/${(started.body as { op_id: string }).op_id}`;
    const running = (await (await fetch(operation)).json()) as OperationStatus;
    assert.equal(running.state, "running");
    const cancelled = await fetch(operation, {
      method: "DELETE",
      headers: { "content-type": "application/json" },
    });
    assert.equal(cancelled.status, 200);
    assert.equal(((await cancelled.json()) as OperationStatus).state, "cancelled");
  });

  test("a node cannot register as another, nor read another node's commands", async () => {
    const bucket = await new Kvm(asNode).open(NODES_BUCKET);
    await assert.rejects(
      bucket.put("node-b", JSON.stringify(playedNode("node-b", Date.now()))),
      /permission/i,
    );
    const denied = new Promise<Error | null>((resolve) => {
      asNode.subscribe("rolemesh.node.node-b.>", { callback: (err) => resolve(err) });
    });
    assert.match(String(await denied), /permission/i);
  });
});

test("off loopback, a gateway or agent without NATS credentials refuses to start", async () => {
  const file = join(await tempDir(), "gateway.yaml");
  await writeFile(file, "nats_url: nats://10.0.0.5:4222\n");
  const result = await runCli(["config", "check", file, "--kind", "gateway"]);
  assert.equal(result.code, 2);
  assert.match(
    result.stderr,
    /nats_url: nats:\/\/10\.0\.0\.5:4222 is not on loopback and no NATS credential/,
  );
  await writeFile(file, "nats_url: nats://10.0.0.5:4222\nnats_user: gateway\n");
  assert.equal((await runCli(["config", "check", file, "--kind", "gateway"])).code, 0);
});
