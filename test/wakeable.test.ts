/**
 * Wakeable capacity (SPEC §11, issue 20) with real processes: a wake command that boots a real
 * agent, a webhook receiver, a UDP listener for the magic packet (on 127.0.0.1 only), an agent
 * put to sleep when idle — its `sleep_command` stops it as a suspend would, its wake command
 * resumes it — and two gateways over a real nats-server sharing one wake.
 */
import assert from "node:assert/strict";
import { createSocket } from "node:dgram";
import type { Socket as UdpSocket } from "node:dgram";
import { once } from "node:events";
import { chmod, readFile, writeFile } from "node:fs/promises";
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { join } from "node:path";
import { after, describe, test } from "node:test";
import type { StatusResponse } from "../src/protocol/registry.js";
import type { WakeableStatus } from "../src/protocol/wakeable.js";
import { postJson, postStream } from "./helpers/http-client.js";
import type { AgentProcess } from "./helpers/launcher.js";
import {
  agentCommandLine,
  joinArgs,
  ROOT,
  startAgent,
  startGateway,
  stopAgent,
  tempDir,
  testModel,
  waitUntil,
} from "./helpers/launcher.js";
import { startNatsServer, stopNatsServers } from "./helpers/nats-server.js";

const HEARTBEAT_S = 1;
type Failure = { error: { message: string; code: string } };
const START_DETACHED = join(ROOT, "test/bin/start-detached.mjs");
const MAC = "02:00:5e:10:00:01";
const chat = (model = "stories") => ({
  model,
  messages: [{ role: "user", content: "Once upon a time" }],
  max_tokens: 8,
});

const started: AgentProcess[] = [];
after(async () => {
  for (const process of started.reverse()) await stopAgent(process);
  await stopNatsServers();
});

async function gateway(config: Record<string, unknown>): Promise<AgentProcess> {
  const process = await startGateway({
    config: { heartbeat_interval_s: HEARTBEAT_S, wake_on_demand: true, ...config },
  });
  started.push(process);
  return process;
}

const wakeable = async (gw: AgentProcess, id: string): Promise<WakeableStatus | undefined> =>
  (await gw.json<StatusResponse>("/api/status")).wakeable.find((entry) => entry.id === id);

async function lines(file: string): Promise<string[]> {
  const text = await readFile(file, "utf8").catch(() => "");
  return text.split("\n").filter(Boolean);
}

/** A wake command that boots an agent `nodeId` serving stories, with `args` and `config`. */
async function bootCommand(
  runs: string,
  nodeId: string,
  args: string[],
  config: Record<string, unknown> = {},
): Promise<string[]> {
  const agent = await agentCommandLine({
    // Room for every request held for it: the ones its queue cannot take get 503 queue_full.
    config: {
      node_id: nodeId,
      models: [testModel()],
      max_pending_requests_per_device: 16,
      ...config,
    },
    args,
  });
  return [process.execPath, START_DETACHED, runs, ...agent];
}

/** A UDP socket on 127.0.0.1 and the datagrams it receives. */
async function udpListener(): Promise<{ socket: UdpSocket; port: number; received: Buffer[] }> {
  const socket = createSocket("udp4");
  const received: Buffer[] = [];
  socket.on("message", (message) => received.push(message));
  socket.bind(0, "127.0.0.1");
  await once(socket, "listening");
  return { socket, port: socket.address().port, received };
}

const magicPacket = (mac: string) =>
  Buffer.concat([
    Buffer.alloc(6, 0xff),
    ...Array.from({ length: 16 }, () => Buffer.from(mac.replaceAll(":", ""), "hex")),
  ]);

describe("wake on demand", () => {
  test("a wake command boots a real agent: many requests, one wake, all served; a held stream hears it waits", async () => {
    const runs = join(await tempDir(), "runs");
    // An entry with no wake action is never woken: shown only.
    const gw = await gateway({ wakeable: [{ id: "ws", node_id: "sleepy", models: ["stories"] }] });
    // The agent the wake command boots joins this gateway, whose URL is known only now: the
    // entry comes through the admin API.
    const entry = {
      id: "booted",
      node_id: "booted-node",
      models: ["stories", "storyteller"],
      wake: { command: await bootCommand(runs, "booted-node", joinArgs(gw, { heartbeatS: 1 })) },
    };
    const stored = await postJson(`${gw.url}/api/wakeable`, entry);
    assert.equal(stored.status, 201, stored.text);

    const stream = postStream(`${gw.url}/v1/chat/completions`, { ...chat(), stream: true });
    const answers = await Promise.all(
      Array.from({ length: 8 }, () => postJson(`${gw.url}/v1/chat/completions`, chat())),
    );
    for (const answer of answers) assert.equal(answer.status, 200, answer.text);
    assert.deepEqual(await lines(runs), ["booted"], "one wake for every request");
    const streamed = await stream;
    assert.equal(streamed.status, 200);
    assert.match(streamed.text, /^: waking booted\n\n/);
    assert.match(streamed.text, /data: \[DONE\]/);

    const status = (await wakeable(gw, "booted"))!;
    assert.equal(status.state, "awake");
    assert.ok(status.last_wake_s !== null && status.last_wake_s > 0);
    const metrics = await (await fetch(`${gw.url}/metrics`)).text();
    assert.match(metrics, /rolemesh_gateway_wakes_total\{entry="booted"\} 1/);
    assert.match(metrics, /rolemesh_gateway_wake_seconds_count 1/);
    // The entry without a wake action stays asleep, and a name nothing serves is still a 404.
    assert.equal((await wakeable(gw, "ws"))?.state, "sleeping");
    assert.equal((await postJson(`${gw.url}/v1/chat/completions`, chat("nothing"))).status, 404);
  });

  test("a webhook that fails, or a node that never registers: failed with the reason, 503s say it", async () => {
    const received: unknown[] = [];
    const hook = createServer((req, res) => {
      let body = "";
      req.on("data", (chunk: Buffer) => (body += chunk.toString()));
      req.on("end", () => {
        received.push({ auth: req.headers.authorization, body: JSON.parse(body) as unknown });
        res.writeHead(500).end("quota exceeded");
      });
    });
    hook.listen(0, "127.0.0.1");
    await once(hook, "listening");
    const hookUrl = `http://127.0.0.1:${(hook.address() as AddressInfo).port}/wake`;
    try {
      const gw = await gateway({
        wake_timeout_s: 2,
        wakeable: [
          {
            id: "vm",
            models: ["stories"],
            wake: { webhook: hookUrl, headers: { authorization: "Bearer hook-secret" } },
          },
          { id: "ghost", node_id: "ghost-node", models: ["ghostly"], wake: { command: ["true"] } },
        ],
      });
      const refused = await postJson<Failure>(`${gw.url}/v1/chat/completions`, chat());
      assert.equal(refused.status, 503, refused.text);
      assert.match(
        refused.body.error.message,
        /"vm" could not be woken for stories: the webhook at .* answered 500: quota exceeded/,
      );
      assert.ok(Number(refused.headers["retry-after"]) > 1);
      assert.deepEqual(received, [
        { auth: "Bearer hook-secret", body: { id: "vm", reason: "request for stories" } },
      ]);
      const status = await gw.json<StatusResponse>("/api/status");
      assert.equal(status.wakeable[0]?.state, "failed");
      assert.match(status.wakeable[0]?.reason ?? "", /answered 500/);
      // Within the cooldown: the reason again, and no second call.
      assert.equal((await postJson(`${gw.url}/v1/chat/completions`, chat())).status, 503);
      assert.equal(received.length, 1);

      const ghost = await postJson(`${gw.url}/v1/chat/completions`, chat("ghostly"));
      assert.equal(ghost.status, 503);
      assert.match(ghost.text, /node ghost-node did not register within 2 s/);
    } finally {
      hook.close();
    }
  });

  test("Wake-on-LAN: the gateway's magic packet, and one sent by an awake node; woken by hand", async () => {
    const listener = await udpListener();
    try {
      const gw = await gateway({
        wakeable: [
          {
            id: "ws",
            node_id: "ws-node",
            models: ["big"],
            wake: { wol: { mac: MAC, address: "127.0.0.1", port: listener.port } },
          },
          {
            id: "lan",
            node_id: "lan-node",
            models: ["big"],
            wake: {
              wol: { mac: MAC, address: "127.0.0.1", port: listener.port, via_node: "relay" },
            },
          },
        ],
      });
      const woken = await postJson<{ wakeable: WakeableStatus }>(
        `${gw.url}/api/wakeable/ws/wake`,
        {},
      );
      assert.equal(woken.status, 202, woken.text);
      assert.equal(woken.body.wakeable.state, "waking");
      await waitUntil(() => listener.received.length === 1, "the magic packet");
      assert.deepEqual(listener.received[0], magicPacket(MAC));

      const relay = await startAgent({
        config: { node_id: "relay", models: [testModel()] },
        args: joinArgs(gw, { heartbeatS: HEARTBEAT_S }),
      });
      started.push(relay);
      await waitUntil(
        async () => (await gw.json<StatusResponse>("/api/status")).peers.length === 1,
        "the relay node to register",
      );
      assert.equal((await postJson(`${gw.url}/api/wakeable/lan/wake`, {})).status, 202);
      await waitUntil(() => listener.received.length === 2, "the packet the node sent");
      assert.deepEqual(listener.received[1], magicPacket(MAC));
      assert.equal((await postJson(`${gw.url}/api/wakeable/nope/wake`, {})).status, 404);
    } finally {
      listener.socket.close();
    }
  });
});

describe("idle sleep", () => {
  test("an idle node sleeps (its sleep_command stops it, as a suspend), the entry is sleeping; a request wakes it", async () => {
    const dir = await tempDir();
    const suspend = join(dir, "suspend");
    // Stops the agent that runs it, the way a suspended machine stops: no heartbeats, no answers.
    await writeFile(suspend, "#!/bin/sh\nkill -STOP $PPID\n");
    await chmod(suspend, 0o755);
    const gw = await gateway({});
    const agent = await startAgent({
      config: { node_id: "napper", models: [testModel()], sleep_command: [suspend] },
      args: joinArgs(gw, { heartbeatS: HEARTBEAT_S }),
    });
    started.push(agent);
    const stored = await postJson(`${gw.url}/api/wakeable`, {
      id: "napper",
      node_id: "napper",
      models: ["stories"],
      wake: { command: ["kill", "-CONT", String(agent.pid)] },
      sleep_after_idle_s: 2,
      sleep: "node",
    });
    assert.equal(stored.status, 201, stored.text);
    const first = await postJson(`${gw.url}/v1/chat/completions`, chat());
    assert.equal(first.status, 200, first.text);

    await waitUntil(
      async () => (await wakeable(gw, "napper"))?.state === "sleeping",
      "the idle node to sleep",
    );
    assert.equal((await gw.json<StatusResponse>("/api/status")).peers.length, 0);
    const woken = await postJson(`${gw.url}/v1/chat/completions`, chat());
    assert.equal(woken.status, 200, woken.text);
    assert.equal((await wakeable(gw, "napper"))?.state, "awake");
  });
});

describe("over NATS", () => {
  test("requests on two gateways wake the entry once", async () => {
    const nats = await startNatsServer();
    const runs = join(await tempDir(), "runs");
    // The agent joins the fleet over NATS: it needs only the server's URL.
    const boot = await bootCommand(runs, "booted-node", ["--heartbeat-interval", "1"], {
      nats_url: nats.url,
    });
    const config = {
      nats_url: nats.url,
      wakeable: [
        { id: "booted", node_id: "booted-node", models: ["stories"], wake: { command: boot } },
      ],
    };
    const gateways = [await gateway(config), await gateway(config)];
    const answers = await Promise.all(
      gateways.flatMap((gw) =>
        Array.from({ length: 3 }, () => postJson(`${gw.url}/v1/chat/completions`, chat())),
      ),
    );
    for (const answer of answers) assert.equal(answer.status, 200, answer.text);
    assert.deepEqual(await lines(runs), ["booted"]);
  });
});
