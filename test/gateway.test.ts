/**
 * The gateway with real agents on loopback (SPEC §7.2–7.4): registration, role routing,
 * failover, restarts, join tokens, ordered messages, client keys, and `rolemesh up`.
 */
import assert from "node:assert/strict";
import { readFile } from "node:fs/promises";
import { once } from "node:events";
import { createServer as createHttpServer } from "node:http";
import { connect, createServer } from "node:net";
import type { AddressInfo } from "node:net";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import type { NodeInventory } from "../src/protocol/inventory.js";
import type { StatusResponse } from "../src/protocol/registry.js";
import { assertError, postJson, postStream } from "./helpers/http-client.js";
import type { AgentProcess } from "./helpers/launcher.js";
import {
  joinArgs,
  LONG_STREAM,
  startAgent,
  startGateway,
  startUp,
  stopAgent,
  tempDir,
  testModel,
  waitUntil,
} from "./helpers/launcher.js";
import { playedDevice, playedNode } from "./helpers/played-node.js";

const JOIN_TOKEN = "join-token-for-tests-0123";
const HEARTBEAT_S = 1;
const chat = (model: string, content = "Once upon a time") => ({
  model,
  messages: [{ role: "user", content }],
  max_tokens: 4,
});
const joinHeaders = { authorization: `Bearer ${JOIN_TOKEN}` };

async function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const probe = createServer().listen(0, "127.0.0.1", () => {
      const { port } = probe.address() as { port: number };
      probe.close(() => resolve(port));
    });
  });
}

const status = (gateway: AgentProcess) => gateway.json<StatusResponse>("/api/status");
const peerIds = async (gateway: AgentProcess) =>
  (await status(gateway)).peers.map((peer) => peer.node_id).sort();

describe("one gateway, three agents", () => {
  let gateway: AgentProcess;
  let gatewayPort: number;
  let gatewayDir: string;
  const agents: AgentProcess[] = [];

  const gatewayConfig = () => ({
    listen_port: gatewayPort,
    join_token: JOIN_TOKEN,
    heartbeat_interval_s: HEARTBEAT_S,
    // The stalled-reader test sends heartbeats as fast as it can.
    heartbeat_min_interval_s: 0,
    max_attempts: 3,
    api_keys: [],
  });

  before(async () => {
    gatewayPort = await freePort();
    gatewayDir = await tempDir();
    gateway = await startGateway({ config: gatewayConfig(), stateDir: gatewayDir });
    for (let i = 0; i < 3; i++) {
      const models = [testModel("stories", { roles: ["chat"] })];
      if (i === 0) models.push(testModel("solo", { roles: [] }));
      agents.push(
        await startAgent({
          config: { node_id: `node-${i}`, models },
          args: joinArgs(gateway, { joinToken: JOIN_TOKEN, heartbeatS: 1 }),
          env: { FAKE_LLAMA_TOKEN_MS: "5" },
        }),
      );
    }
    await waitUntil(async () => (await peerIds(gateway)).length === 3, "three agents to register");
  });

  after(async () => {
    for (const agent of agents) if (agent.child.exitCode === null) await stopAgent(agent);
  });

  /** The gateway's registry endpoints, for nodes a test plays itself. */
  const nodesUrl = (path: string) => `${gateway.url}/v1/nodes/${path}`;

  test("agents register and heartbeat with their states; /v1/models lists ids and roles", async () => {
    const first = await status(gateway);
    assert.deepEqual(
      first.peers.map((peer) => peer.state),
      ["standby", "standby", "standby"],
    );
    assert.equal(first.node_state, "client");
    assert.equal(first.node_status, "Client");
    assert.deepEqual(first.wakeable, []);
    assert.ok(first.peers.every((peer) => peer.agent_url.startsWith("http://127.0.0.1:")));
    assert.ok(!JSON.stringify(first).includes(JOIN_TOKEN));

    for (const agent of agents) {
      assert.equal((await postJson(`${agent.url}/v1/node/models/stories/load`, {})).status, 200);
    }
    await waitUntil(
      async () => (await status(gateway)).peers.every((peer) => peer.state === "serving"),
      "every node to report serving in a heartbeat",
    );
    const models = await gateway.json<{ data: { id: string; kind: string; node_count: number }[] }>(
      "/v1/models",
    );
    assert.deepEqual(
      models.data.map((entry) => [entry.id, entry.kind, entry.node_count]),
      [
        ["solo", "model", 1],
        ["stories", "model", 3],
        ["chat", "role", 3],
      ].sort(
        (a, b) =>
          String(a[1]).localeCompare(String(b[1])) || String(a[0]).localeCompare(String(b[0])),
      ),
    );
  });

  test("a role's conversations are spread over the nodes that serve it; a model id goes to its node; unknown is 404", async () => {
    const served = new Set<string>();
    for (let i = 0; i < 12; i++) {
      const tale = chat("chat", `Tell me tale number ${i}`);
      const answer = await postJson(`${gateway.url}/v1/chat/completions`, tale);
      assert.equal(answer.status, 200, answer.text);
      assert.equal(answer.headers["x-rolemesh-model"], "stories");
      served.add(String(answer.headers["x-rolemesh-node"]));
    }
    assert.deepEqual([...served].sort(), ["node-0", "node-1", "node-2"]);
    const solo = await postJson(`${gateway.url}/v1/chat/completions`, chat("solo"));
    assert.equal(solo.status, 200, solo.text);
    assert.equal(solo.headers["x-rolemesh-node"], "node-0");
    assertError(
      await postJson(`${gateway.url}/v1/chat/completions`, chat("nope")),
      404,
      "model_not_found",
    );
  });

  test("a node whose connection dies between its answer's headers and body costs the client nothing: the next node answers", async () => {
    // An agent killed as it answers: the status line is out, the body never comes.
    let hits = 0;
    const dying = createServer((socket) => {
      socket.on("error", () => undefined);
      socket.once("data", () => {
        hits++;
        socket.write(
          "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 500\r\n\r\n",
        );
        setImmediate(() => socket.destroy());
      });
    });
    dying.listen(0, "127.0.0.1");
    await once(dying, "listening");
    const node = playedNode("dying", 4000, {
      agent_url: `http://127.0.0.1:${(dying.address() as AddressInfo).port}`,
      snapshot: {
        state: "serving",
        devices: [playedDevice("solo")],
        models: [{ id: "solo", path: "/m.gguf", roles: [], size_bytes: 1, loaded_on: ["cpu:0"] }],
      },
    });
    try {
      assert.equal(
        (await postJson(nodesUrl("register"), node, { headers: joinHeaders })).status,
        200,
      );
      // Conversations of "solo" are ranked over both of its nodes: some try the dying one first.
      for (let i = 0; i < 8; i++) {
        const tale = chat("solo", `Tell me tale number ${i}`);
        const answer = await postJson(`${gateway.url}/v1/chat/completions`, tale);
        assert.equal(answer.status, 200, answer.text);
        assert.equal(answer.headers["x-rolemesh-node"], "node-0");
      }
      assert.ok(hits >= 1, "the dying node was tried first at least once");
    } finally {
      await postJson(nodesUrl("deregister"), { ...node, sequence: 2 }, { headers: joinHeaders });
      dying.close();
    }
  });

  test("a lone UTF-16 surrogate is refused at the gateway with 400", async () => {
    const answer = await postJson(`${gateway.url}/v1/chat/completions`, {
      ...chat("chat"),
      messages: [{ role: "user", content: "\udc00 once" }],
    });
    assertError(answer, 400, "invalid_request");
    assert.match(answer.text, /"param":"messages\.0\.content"/);
  });

  test("a model whose every node is at its queue limit answers 503 queue_full with Retry-After", async () => {
    const long = { ...chat("solo"), max_tokens: 300 };
    const held = [0, 1].map(() => postJson(`${gateway.url}/v1/chat/completions`, long));
    await waitUntil(async () => {
      const inventory = await agents[0]!.json<NodeInventory>("/v1/node/inventory");
      const queue = inventory.devices[0]?.queue;
      return queue !== undefined && queue.in_flight + queue.pending === queue.limit;
    }, "node-0's queue to fill");
    const rejected = await postJson(`${gateway.url}/v1/chat/completions`, long);
    assertError(rejected, 503, "queue_full");
    assert.ok(Number(rejected.headers["retry-after"]) >= 1, "Retry-After is passed on");
    for (const answer of await Promise.all(held)) assert.equal(answer.status, 200, answer.text);
  });

  test("streams pass through the gateway chunk by chunk; /api/events streams registry changes", async () => {
    const streamed = await postStream(`${gateway.url}/v1/chat/completions`, {
      ...chat("chat"),
      stream: true,
      ...LONG_STREAM,
    });
    assert.equal(streamed.status, 200);
    assert.equal(streamed.headers["x-accel-buffering"], "no");
    assert.equal(streamed.events.at(-1), "[DONE]");
    assert.ok(streamed.chunks.length > 2);

    const controller = new AbortController();
    const res = await fetch(`${gateway.url}/api/events`, { signal: controller.signal });
    assert.match(res.headers.get("content-type") ?? "", /^text\/event-stream/);
    const reader = res.body!.getReader();
    let text = "";
    while (!text.includes('"type":"node_updated"')) {
      const { value } = await reader.read();
      text += new TextDecoder().decode(value);
    }
    controller.abort();
    assert.match(text, /^data: \{"type":"status","status":\{/);
  });

  test("an /api/events reader that stops reading is cut off, not sent every later event", async () => {
    // A node whose every update is a large event (labels as large as the gateway accepts).
    const story = "x".repeat(1000);
    const labels = Object.fromEntries(Array.from({ length: 64 }, (_, i) => [`story-${i}`, story]));
    const chatty = playedNode("chatty", 2000, { labels });
    assert.equal(
      (await postJson(nodesUrl("register"), chatty, { headers: joinHeaders })).status,
      200,
    );
    const { port } = new URL(gateway.url);
    const stalled = connect(Number(port), "127.0.0.1");
    stalled.on("error", () => undefined); // the gateway resets it
    stalled.write(`GET /api/events HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n`);
    stalled.pause(); // and never reads again
    const cutOff = () => gateway.output.some((line) => line.includes("reader fell behind"));
    // Enough for the kernel's socket buffers and the gateway's backlog limit, many times over.
    for (let sequence = 2; sequence < 1000 && !cutOff(); sequence++) {
      await postJson(nodesUrl("heartbeat"), { ...chatty, sequence }, { headers: joinHeaders });
    }
    stalled.destroy();
    await postJson(nodesUrl("deregister"), { ...chatty, sequence: 1000 }, { headers: joinHeaders });
    assert.ok(cutOff(), "the gateway cut the stalled reader off");
  });

  test("the gateway closes its connections to a node that left", async () => {
    // A stand-in agent that asks to keep connections open for minutes, as a server may.
    let open = 0;
    const standIn = createHttpServer((_req, res) => {
      res.writeHead(200, { "content-type": "application/json", "keep-alive": "timeout=300" });
      res.end(JSON.stringify({ choices: [{ message: { content: "hi" } }] }));
    });
    standIn.on("connection", (socket) => {
      open++;
      socket.on("close", () => open--);
    });
    standIn.listen(0, "127.0.0.1");
    await once(standIn, "listening");
    const { port } = standIn.address() as AddressInfo;
    const departing = playedNode("departing", 3000, {
      agent_url: `http://127.0.0.1:${port}`,
      snapshot: {
        state: "serving",
        devices: [],
        models: [
          { id: "departing-model", path: "/m.gguf", roles: [], size_bytes: 1, loaded_on: [] },
        ],
      },
    });
    try {
      assert.equal(
        (await postJson(nodesUrl("register"), departing, { headers: joinHeaders })).status,
        200,
      );
      const answer = await postJson(`${gateway.url}/v1/chat/completions`, chat("departing-model"));
      assert.equal(answer.status, 200, answer.text);
      assert.equal(open, 1, "the gateway keeps a connection to the node");
      await postJson(
        nodesUrl("deregister"),
        { ...departing, sequence: 2 },
        { headers: joinHeaders },
      );
      await waitUntil(async () => open === 0, "the gateway to close its connection", 5000);
    } finally {
      standIn.closeAllConnections();
      standIn.close();
    }
  });

  test("wrong join token: 401 and nothing stored; replayed and late messages change nothing", async () => {
    const base = playedNode("ghost", 1000, { sequence: 5 });
    const denied = await postJson(nodesUrl("register"), base, {
      headers: { authorization: "Bearer wrong" },
    });
    assertError(denied, 401, "invalid_api_key");
    assertError(await postJson(nodesUrl("register"), base), 401, "invalid_api_key");
    assert.ok(!(await peerIds(gateway)).includes("ghost"), "nothing stored");

    assert.equal(
      (await postJson(nodesUrl("register"), base, { headers: joinHeaders })).status,
      200,
    );
    const serving = { ...base, sequence: 6, snapshot: { ...base.snapshot, state: "serving" } };
    assert.deepEqual(
      (await postJson(nodesUrl("heartbeat"), serving, { headers: joinHeaders })).body,
      {
        accepted: true,
      },
    );
    const replayed = await postJson(
      nodesUrl("heartbeat"),
      { ...base, sequence: 5 },
      { headers: joinHeaders },
    );
    assert.deepEqual(replayed.body, { accepted: false });
    const ghost = (await status(gateway)).peers.find((peer) => peer.node_id === "ghost");
    assert.equal(ghost?.state, "serving", "the replayed heartbeat did not roll the state back");

    await postJson(
      nodesUrl("deregister"),
      { node_id: "ghost", started_at: 1000, sequence: 7, node_secret: base.node_secret },
      { headers: joinHeaders },
    );
    assertError(
      await postJson(nodesUrl("heartbeat"), serving, { headers: joinHeaders }),
      404,
      "unknown_node",
    );
    await postJson(nodesUrl("register"), base, { headers: joinHeaders });
    assert.ok(
      !(await peerIds(gateway)).includes("ghost"),
      "a replayed registration does not revive it",
    );
  });

  test("gateway restarted: every agent is back within one heartbeat interval, with no action by anyone", async () => {
    gateway.signal("SIGKILL");
    await gateway.exited;
    gateway = await startGateway({ config: gatewayConfig(), stateDir: gatewayDir });
    const back = Date.now();
    await waitUntil(
      async () => (await peerIds(gateway)).length === 3,
      "the agents to register again",
      10_000,
    );
    const took = Date.now() - back;
    // One interval, plus a heartbeat round trip and a registration on a loaded 2-core machine.
    assert.ok(took <= HEARTBEAT_S * 1000 + 1000, `all back after ${took} ms`);
  });

  test("an agent SIGKILLed under steady requests: no request fails; it leaves peers after the lease", async () => {
    const victim = agents[1]!;
    let stop = false;
    const outcomes: (number | string)[] = [];
    const worker = async () => {
      while (!stop) {
        try {
          outcomes.push(
            (await postJson(`${gateway.url}/v1/chat/completions`, chat("chat"))).status,
          );
        } catch (err) {
          outcomes.push((err as Error).message);
        }
      }
    };
    const workers = [worker(), worker(), worker()];
    await waitUntil(() => outcomes.length >= 10, "some requests to be served");
    victim.signal("SIGKILL");
    await victim.exited;
    const killedAt = Date.now();
    await waitUntil(
      async () => !(await peerIds(gateway)).includes("node-1"),
      "the node to leave peers",
      10_000,
    );
    const leftAfter = Date.now() - killedAt;
    await waitUntil(() => outcomes.length >= 40, "requests after the kill");
    stop = true;
    await Promise.all(workers);
    assert.deepEqual(
      outcomes.filter((outcome) => outcome !== 200),
      [],
      "every request was served by a live node",
    );
    assert.ok(leftAfter <= 3 * HEARTBEAT_S * 1000 + 1500, `left after ${leftAfter} ms`);
  });
});

describe("client keys", () => {
  test("no key 401, wrong model 403, over the rate 429 with Retry-After; admin-made keys are stored hashed", async () => {
    const gateway = await startGateway({
      config: {
        join_token: JOIN_TOKEN,
        admin_key: "admin-key-0123456789",
        api_keys: [
          {
            name: "limited",
            key: "k-limited-0123456789",
            models: ["chat"],
            requests_per_minute: 2,
          },
          { name: "everything", key: "k-everything-0123456789" },
        ],
      },
    });
    await startAgent({
      config: {
        models: [testModel("stories", { roles: ["chat"] }), testModel("other", { roles: [] })],
      },
      args: joinArgs(gateway, { joinToken: JOIN_TOKEN }),
    });
    const url = `${gateway.url}/v1/chat/completions`;
    const as = (key: string) => ({ headers: { authorization: `Bearer ${key}` } });
    await waitUntil(
      async () => (await postJson(url, chat("chat"), as("k-everything-0123456789"))).status === 200,
      "the node",
    );

    assertError(await postJson(url, chat("chat")), 401, "invalid_api_key");
    assertError(
      await postJson(url, chat("chat"), as("k-unknown-0123456789")),
      401,
      "invalid_api_key",
    );
    assertError(await postJson(url, chat("other"), as("k-limited-0123456789")), 403, "forbidden");
    assert.equal((await postJson(url, chat("chat"), as("k-limited-0123456789"))).status, 200);
    assert.equal((await postJson(url, chat("chat"), as("k-limited-0123456789"))).status, 200);
    const limited = await postJson(url, chat("chat"), as("k-limited-0123456789"));
    assertError(limited, 429, "rate_limited");
    assert.ok(Number(limited.headers["retry-after"]) >= 1);

    const newKey = { name: "script", models: ["stories"] };
    assertError(await postJson(`${gateway.url}/api/keys`, newKey), 401, "invalid_api_key");
    assertError(
      await postJson(`${gateway.url}/api/keys`, newKey, as("k-everything-0123456789")),
      401,
      "invalid_api_key",
    );
    const created = await postJson<{ key: string; name: string }>(
      `${gateway.url}/api/keys`,
      newKey,
      as("admin-key-0123456789"),
    );
    assert.equal(created.status, 201, created.text);
    assert.equal((await postJson(url, chat("stories"), as(created.body.key))).status, 200);
    const stored = await readFile(join(gateway.stateDir, "keys.json"), "utf8");
    assert.ok(!stored.includes(created.body.key), "the secret is not stored in clear");
    assert.match(stored, /"sha256"/);
    assert.equal(
      (await fetch(`${gateway.url}/api/status`)).status,
      401,
      "status needs a key once keys exist",
    );
  });
});

describe("rolemesh up", () => {
  test("with no config it answers /v1/models and /api/status, the local node registered in process", async () => {
    const up = await startUp({ config: {} });
    const models = await up.json<{ object: string; data: unknown[] }>("/v1/models");
    assert.deepEqual(models, { object: "list", data: [] });
    const answer = await waitUntil(async () => {
      const current = await status(up);
      return current.peers.length === 1 ? current : undefined;
    }, "the local agent to register");
    assert.equal(answer.node_state, "client");
    assert.equal(answer.peers[0]?.state, "client");
  });

  test("with a model flag it serves a chat completion through the gateway", async () => {
    const dir = await tempDir();
    const up = await startUp({
      config: { agent: { state_dir: join(dir, "agent") } },
      args: ["--model", `${String(testModel().path)}:stories:storyteller`],
    });
    await waitUntil(
      async () => (await status(up)).peers.length === 1,
      "the local agent to register",
    );
    const answer = await postJson(`${up.url}/v1/chat/completions`, chat("storyteller"));
    assert.equal(answer.status, 200, answer.text);
    assert.equal((await status(up)).node_state, "serving");
  });
});
