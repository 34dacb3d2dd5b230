/**
 * The control plane over NATS (SPEC §8, issue 18) against a real nats-server: two gateways and
 * two agents that know nothing of each other but the NATS URL. Every gateway sees every node
 * and routes to it; a NATS that restarts, even without its store, costs a blip; a gateway that
 * dies leaves the other serving; an agent that leaves or loses its link is gone everywhere, and
 * one whose NATS link alone is cut (a relay between it and NATS) is gone until the link is back.
 */
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { readFile } from "node:fs/promises";
import { Kvm } from "@nats-io/kv";
import { connect } from "@nats-io/transport-node";
import { NODES_BUCKET } from "../src/protocol/nats.js";
import { AGENT_PATHS, REGISTRY_PATHS } from "../src/protocol/paths.js";
import type { LoadResult, UnloadResult } from "../src/protocol/node-commands.js";
import type { OperationStatus } from "../src/protocol/operations.js";
import { LEASE_HEARTBEATS } from "../src/protocol/registry.js";
import type { StatusResponse } from "../src/protocol/registry.js";
import { launchBrowser } from "./helpers/browser.js";
import { startFileServer } from "./helpers/file-server.js";
import type { FileServer } from "./helpers/file-server.js";
import { assertError, postJson } from "./helpers/http-client.js";
import type { AgentProcess } from "./helpers/launcher.js";
import {
  startAgent,
  startGateway,
  startUp,
  stopAgent,
  STORIES_MODEL,
  testModel,
  waitUntil,
} from "./helpers/launcher.js";
import { startNatsServer, stopNatsServers } from "./helpers/nats-server.js";
import { playedNode } from "./helpers/played-node.js";
import type { NatsServer } from "./helpers/nats-server.js";
import { startTcpRelay } from "./helpers/tcp-relay.js";

after(stopNatsServers);
const HEARTBEAT_S = 1;
/**
 * How long a silent node may stay listed, generously: each gateway ends its lease
 * (LEASE_HEARTBEATS heartbeats) by its own clock, swept every second, on a busy machine.
 */
const LEASE_DEADLINE_MS = 3 * LEASE_HEARTBEATS * HEARTBEAT_S * 1000;
const chat = { model: "stories", messages: [{ role: "user", content: "Hi" }], max_tokens: 2 };

describe("a fleet over NATS", () => {
  let nats: NatsServer;
  const gateways: AgentProcess[] = [];
  const agents = new Map<string, AgentProcess>();
  const status = (gateway: AgentProcess) => gateway.json<StatusResponse>("/api/status");
  const nodesOf = async (gateway: AgentProcess) =>
    (await status(gateway)).peers.map((peer) => peer.node_id).sort();
  /** Waits until `gateway` lists exactly `nodeIds`, all serving (their model loaded). */
  const sees = (gateway: AgentProcess, nodeIds: string[], what: string, timeoutMs?: number) =>
    waitUntil(
      async () => {
        const { peers } = await status(gateway);
        return (
          peers
            .map((peer) => peer.node_id)
            .sort()
            .join() === nodeIds.join() && peers.every((peer) => peer.state === "serving")
        );
      },
      what,
      timeoutMs,
    );

  let files: FileServer;

  before(async () => {
    files = await startFileServer();
    nats = await startNatsServer();
    const config = { nats_url: nats.url, heartbeat_interval_s: HEARTBEAT_S };
    for (let i = 0; i < 2; i++) gateways.push(await startGateway({ config }));
    for (const nodeId of ["node-a", "node-b"]) {
      const agent = await startAgent({
        config: { ...config, node_id: nodeId, models: [testModel()] },
      });
      agents.set(nodeId, agent);
      const loaded = await postJson(`${agent.url}/v1/node/models/stories/load`, {});
      assert.equal(loaded.status, 200, loaded.text);
    }
  });

  after(async () => {
    for (const agent of agents.values()) await stopAgent(agent);
    for (const gateway of gateways) await stopAgent(gateway);
  });

  test("every gateway sees every node, lists every gateway and routes to any node", async () => {
    for (const gateway of gateways) {
      await sees(gateway, ["node-a", "node-b"], `${gateway.url} to see both nodes`);
      await waitUntil(
        async () => (await status(gateway)).gateways.length === 2,
        `${gateway.url} to list both gateways`,
      );
      // Conversations are ranked over both nodes: both serve sooner or later.
      const served = new Set<string>();
      let conversation = 0;
      await waitUntil(async () => {
        const answer = await postJson(`${gateway.url}/v1/chat/completions`, {
          ...chat,
          messages: [{ role: "user", content: `Hi, I am conversation ${conversation++}` }],
        });
        assert.equal(answer.status, 200, answer.text);
        served.add(String(answer.headers["x-rolemesh-node"]));
        return served.size === 2;
      }, `${gateway.url} to route to both nodes`);
      assert.deepEqual([...served].sort(), ["node-a", "node-b"]);
    }
    const [first] = gateways;
    const { gateway, gateways: listed } = await status(first!);
    assert.equal(listed[0]?.id, gateway.id, "this gateway first");
    // Each gateway measures how long puts take to reach its registry.
    const metrics = await (await fetch(`${first!.url}/metrics`)).text();
    const lagged = /^rolemesh_gateway_registry_lag_seconds_count (\d+)/m.exec(metrics);
    assert.ok(Number(lagged?.[1]) > 0, "registry lag observed");
    // The console lists them too.
    const page = await (await launchBrowser()).newPage();
    await page.goto(first!.url);
    await page.locator("[data-gateway]").nth(1).waitFor();
    assert.equal(await page.locator("[data-gateway]").count(), 2);
    await page.close();
  });

  test("commands over NATS: any gateway commands any node, and follows its operations", async () => {
    const [first, second] = gateways as [AgentProcess, AgentProcess];
    const command = (gateway: AgentProcess, nodeId: string, name: string, args = {}) =>
      postJson(`${gateway.url}/api/nodes/${nodeId}/commands/${name}`, args);
    const unloaded = await command(second, "node-a", "model.unload", { model_id: "stories" });
    assert.equal(unloaded.status, 200, unloaded.text);
    assert.deepEqual((unloaded.body as { result: UnloadResult }).result.unloaded_from, ["cpu:0"]);
    const loaded = await command(first, "node-a", "model.load", { model_id: "stories" });
    assert.equal(loaded.status, 200, loaded.text);
    assert.equal((loaded.body as { result: LoadResult }).result.server.state, "ready");
    const refused = await command(first, "node-a", "model.load", { model_id: "nothing" });
    assertError(refused, 404, "model_not_found");

    // An install started through one gateway, followed to its end through the other.
    files.files.set("/m/copy.gguf", { body: await readFile(STORIES_MODEL) });
    const started = await command(first, "node-b", "model.install", {
      model_id: "copy",
      url: `${files.url}/m/copy.gguf`,
    });
    assert.equal(started.status, 202, started.text);
    const { op_id: opId } = started.body as { op_id: string };
    const followed = await fetch(`${second.url}/api/operations/${opId}`, {
      headers: { accept: "text/event-stream" },
    });
    const statuses = (await followed.text())
      .split("\n\n")
      .filter((event) => event.startsWith("data: "))
      .map((event) => JSON.parse(event.slice(6)) as OperationStatus);
    assert.equal(statuses.at(-1)?.state, "succeeded", JSON.stringify(statuses.at(-1)));
  });

  test("an operation is cancelled through any gateway by its id alone; the next install resumes", async () => {
    const [first, second] = gateways as [AgentProcess, AgentProcess];
    let release = () => {};
    const hold = new Promise<void>((resolve) => (release = resolve));
    files.files.set("/m/held.gguf", { body: await readFile(STORIES_MODEL), hold });
    const install = () =>
      postJson(`${first.url}/api/nodes/node-a/commands/model.install`, {
        model_id: "held",
        url: `${files.url}/m/held.gguf`,
      });
    const started = await install();
    assert.equal(started.status, 202, started.text);
    const { op_id: opId } = started.body as { op_id: string };
    const statusOn = (gateway: AgentProcess) =>
      gateway.json<OperationStatus>(`/api/operations/${opId}`);
    await waitUntil(
      async () => (await statusOn(second)).progress.bytes > 0,
      "half the file to arrive",
    );

    const cancel = (opId: string) =>
      fetch(`${second.url}/api/operations/${opId}`, {
        method: "DELETE",
        headers: { "content-type": "application/json" },
      });
    const cancelled = await cancel(opId);
    const body = (await cancelled.json()) as OperationStatus;
    assert.equal(cancelled.status, 200, JSON.stringify(body));
    assert.equal(body.state, "cancelled");
    assert.equal((await statusOn(first)).state, "cancelled", "the same on every gateway");
    const unknown = await cancel("op-nobody");
    assert.equal(unknown.status, 404);
    assert.equal(((await unknown.json()) as { error: { code: string } }).error.code, "not_found");

    release();
    const again = await install();
    assert.equal(again.status, 202, again.text);
    const { op_id: againId } = again.body as { op_id: string };
    await waitUntil(
      async () =>
        (await first.json<OperationStatus>(`/api/operations/${againId}`)).state === "succeeded",
      "the second install to finish",
    );
    const held = files.requests.filter((request) => request.path === "/m/held.gguf");
    assert.match(String(held.at(-1)?.range), /^bytes=[1-9]\d*-$/, "resumed from the .part");
  });

  test("a node listed but absent from NATS: its commands get 503 node_unreachable at once", async () => {
    const connection = await connect({ servers: nats.url });
    try {
      const bucket = await new Kvm(connection).open(NODES_BUCKET);
      await bucket.put("ghost", JSON.stringify(playedNode("ghost", Date.now())));
      const gateway = gateways[0]!;
      await waitUntil(async () => (await nodesOf(gateway)).includes("ghost"), "the ghost node");
      const answer = await postJson(`${gateway.url}/api/nodes/ghost/commands/node.drain`, {});
      assertError(answer, 503, "node_unreachable");
      await bucket.delete("ghost");
      await waitUntil(async () => !(await nodesOf(gateway)).includes("ghost"), "the ghost to go");
    } finally {
      await connection.close();
    }
  });

  test("client keys and wakeable entries are the same on every gateway", async () => {
    const [first, second] = gateways as [AgentProcess, AgentProcess];
    const keyNames = async (gateway: AgentProcess) =>
      (await gateway.json<{ keys: { name: string }[] }>("/api/keys")).keys
        .map((k) => k.name)
        .sort();
    // Created at once on both gateways: both land (compare-and-set on the shared document).
    const created = await Promise.all([
      postJson(`${first.url}/api/keys`, { name: "app-1" }),
      postJson(`${second.url}/api/keys`, { name: "app-2" }),
    ]);
    const failures = gateways.flatMap((gateway) =>
      gateway.output.filter((line) => line.includes('"level":50')),
    );
    for (const answer of created)
      assert.equal(answer.status, 201, `${answer.text}\n${failures.join("\n")}`);
    for (const gateway of gateways) {
      await waitUntil(
        async () => (await keyNames(gateway)).join() === "app-1,app-2",
        `${gateway.url} to hold both keys`,
      );
    }
    const secret = (created[0]!.body as { key: string }).key;
    const asApp = { headers: { authorization: `Bearer ${secret}` } };
    assert.equal((await postJson(`${second.url}/v1/chat/completions`, chat, asApp)).status, 200);
    assertError(await postJson(`${second.url}/v1/chat/completions`, chat), 401, "invalid_api_key");

    const added = await postJson(`${second.url}/api/wakeable`, { id: "spare", vram_mb: 24576 });
    assert.equal(added.status, 201, added.text);
    await waitUntil(
      async () =>
        (await first.json<{ wakeable: { id: string }[] }>("/api/wakeable")).wakeable.some(
          (entry) => entry.id === "spare",
        ),
      "the entry added through one gateway to show on the other",
    );

    // Open again for the tests that follow.
    for (const name of ["app-1", "app-2"]) {
      const deleted = await fetch(`${first.url}/api/keys/${name}`, {
        method: "DELETE",
        headers: { "content-type": "application/json" },
      });
      assert.equal(deleted.status, 200);
    }
    await waitUntil(async () => (await keyNames(second)).length === 0, "the keys to be gone");
  });

  test("a gateway on NATS refuses registrations over HTTP: they would live on it alone", async () => {
    const answer = await postJson(
      `${gateways[0]!.url}${REGISTRY_PATHS.register}`,
      playedNode("http-node", Date.now()),
    );
    assertError(answer, 400, "invalid_request");
    assert.match(answer.text, /give the agent nats_url/);
  });

  test("an agent cut off from NATS alone: its lease ends on every gateway; back with its link", async (t) => {
    const { hostname, port } = new URL(nats.url);
    const relay = await startTcpRelay({ host: hostname, port: Number(port) });
    const agent = await startAgent({
      config: {
        nats_url: `nats://127.0.0.1:${relay.port}`,
        heartbeat_interval_s: HEARTBEAT_S,
        node_id: "node-c",
        models: [testModel("solo")],
      },
    });
    // Here, not in the suite's `after`: the tests that follow count the nodes.
    t.after(async () => {
      await stopAgent(agent);
      await relay.close();
    });
    const loaded = await postJson(`${agent.url}/v1/node/models/solo/load`, {});
    assert.equal(loaded.status, 200, loaded.text);
    const everyNode = ["node-a", "node-b", "node-c"];
    for (const gateway of gateways) await sees(gateway, everyNode, `${gateway.url} to see node-c`);
    // Only node-c has "solo": while it is listed, a gateway routes there, and it answers.
    const solo = { ...chat, model: "solo" };
    const routed = await postJson(`${gateways[0]!.url}/v1/chat/completions`, solo);
    assert.equal(routed.status, 200, routed.text);
    assert.equal(routed.headers["x-rolemesh-node"], "node-c");

    relay.cut();
    await Promise.all(
      gateways.map((gateway) =>
        sees(gateway, ["node-a", "node-b"], `${gateway.url} to drop node-c`, LEASE_DEADLINE_MS),
      ),
    );
    for (const gateway of gateways) {
      assertError(
        await postJson(`${gateway.url}/v1/chat/completions`, solo),
        404,
        "model_not_found",
      );
    }
    // Its HTTP API still answers: the NATS link alone was lost.
    const inventory = await fetch(`${agent.url}${AGENT_PATHS.inventory}`);
    assert.equal(inventory.status, 200, await inventory.text());

    // The agent's NATS client reconnects and puts its key again.
    relay.restore();
    for (const gateway of gateways) {
      await sees(gateway, everyNode, `${gateway.url} to see node-c again`);
    }
  });

  test("NATS restarted without its store: every node is routable again on every gateway", async () => {
    const before = await Promise.all(gateways.map(status));
    const restartedAt = Date.now();
    await nats.restart({ loseStore: true });
    for (const [i, gateway] of gateways.entries()) {
      // Heard from again after the restart: the bucket and the watches were set up anew.
      await waitUntil(async () => {
        const { peers } = await status(gateway);
        return (
          peers.length === 2 && peers.every((peer) => Date.parse(peer.last_seen) > restartedAt)
        );
      }, `${gateway.url} to hear from both nodes after the restart`);
      const { peers } = await status(gateway);
      for (const peer of peers) {
        const earlier = before[i]!.peers.find((p) => p.node_id === peer.node_id);
        assert.equal(peer.registered_at, earlier?.registered_at, `${peer.node_id} never left`);
      }
      const answer = await postJson(`${gateway.url}/v1/chat/completions`, chat);
      assert.equal(answer.status, 200, answer.text);
    }
    // The shared state bucket came back too: keys can be created, and removed again.
    const created = await postJson(`${gateways[1]!.url}/api/keys`, { name: "after-restart" });
    assert.equal(created.status, 201, created.text);
    const removed = await fetch(`${gateways[0]!.url}/api/keys/after-restart`, {
      method: "DELETE",
      headers: { "content-type": "application/json" },
    });
    assert.equal(removed.status, 200);
  });

  test("a gateway killed mid-command: the other keeps serving, shows the operation, stops listing it", async () => {
    let release = () => {};
    files.files.set("/m/orphan.gguf", {
      body: await readFile(STORIES_MODEL),
      hold: new Promise((resolve) => (release = resolve)),
    });
    const started = await postJson(`${gateways[0]!.url}/api/nodes/node-b/commands/model.install`, {
      model_id: "orphan",
      url: `${files.url}/m/orphan.gguf`,
    });
    assert.equal(started.status, 202, started.text);
    const { op_id: opId } = started.body as { op_id: string };
    const killed = gateways.shift()!;
    killed.signal("SIGKILL");
    await killed.exited;
    const survivor = gateways[0]!;
    const operation = () => survivor.json<OperationStatus>(`/api/operations/${opId}`);
    assert.equal((await operation()).state, "running");
    release();
    await waitUntil(async () => (await operation()).state === "succeeded", "the install to end");
    assert.equal((await postJson(`${survivor.url}/v1/chat/completions`, chat)).status, 200);
    await waitUntil(
      async () => (await status(survivor)).gateways.length === 1,
      "the dead gateway to leave the list",
    );
    assert.deepEqual(await nodesOf(survivor), ["node-a", "node-b"]);
  });

  test("an agent that stops is gone at once; one killed is gone within the lease", async () => {
    const gateway = gateways[0]!;
    await stopAgent(agents.get("node-b")!);
    agents.delete("node-b");
    await sees(gateway, ["node-a"], "the stopped agent to be gone", 2_000);
    // SIGKILL: no deregistration; its key ages out (no event on nats-server 2.9), and the
    // gateway's own clock removes the node at the lease.
    const killed = agents.get("node-a")!;
    killed.signal("SIGKILL");
    await killed.exited;
    await waitUntil(
      async () => (await nodesOf(gateway)).length === 0,
      "the killed agent to age out",
      LEASE_DEADLINE_MS,
    );
  });

  test("rolemesh up joins the fleet: its agent registers over NATS, its gateway sees all", async () => {
    const config = { nats_url: nats.url, heartbeat_interval_s: HEARTBEAT_S };
    const up = await startUp({
      config: { gateway: config, agent: { ...config, node_id: "up-node", models: [testModel()] } },
    });
    try {
      const gateway = gateways[0]!;
      await waitUntil(async () => (await nodesOf(gateway)).includes("up-node"), "up's agent");
      await waitUntil(
        async () => (await status(up)).gateways.length === 2,
        "up's gateway to list both",
      );
    } finally {
      await stopAgent(up);
    }
  });
});
