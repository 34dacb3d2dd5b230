/**
 * Split inference between two hosts (issue 19): one agent runs in a network namespace of its
 * own, the other with the gateway in the test's namespace, each on its address on a veth link
 * between them — a fleet on a real network, secured as one must be there (join token, admin
 * key, the agents' auth token). The real llama-server and rpc-server of `rolemesh engine build`.
 * The tunnel carries the layers across the link; the worker's rpc-server cannot be reached
 * from the other host at all, and its tunnel relays nothing to a connection without a fleet
 * certificate.
 */
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { promisify } from "node:util";
import type { PeerStatus, StatusResponse } from "../src/protocol/registry.js";
import { postJson } from "./helpers/http-client.js";
import type { AgentProcess } from "./helpers/launcher.js";
import {
  joinArgs,
  REAL_ENGINE,
  startAgent,
  startGateway,
  stopAgent,
  testModel,
  waitUntil,
} from "./helpers/launcher.js";
import { makeNetns, whyNoNetns } from "./helpers/netns.js";
import type { NetworkNamespace } from "./helpers/netns.js";
import { listeningSockets } from "./helpers/proc-net.js";
import { probeWithoutCertificate } from "./helpers/tunnel-kit.js";

const run = promisify(execFile);

const HEARTBEAT_S = 1;
const JOIN_TOKEN = "join-token-for-the-test-fleet";
const ADMIN_KEY = "admin-key-for-the-test-fleet";
const AUTH_TOKEN = "auth-token-of-the-test-agents";
const admin = { authorization: `Bearer ${ADMIN_KEY}` };
type Chat = { choices: { message: { content: string } }[] };

const skip = REAL_ENGINE
  ? ((await whyNoNetns()) ?? false)
  : "needs the real llama-server and rpc-server (npm run test:real)";

describe("split inference between two hosts", { skip }, () => {
  let netns: NetworkNamespace;
  let gateway: AgentProcess;
  const status = () => gateway.json<StatusResponse>("/api/status", { headers: admin });
  const peer = async (nodeId: string): Promise<PeerStatus | undefined> =>
    (await status()).peers.find((entry) => entry.node_id === nodeId);
  const chat = (model: string) =>
    postJson<Chat>(
      `${gateway.url}/v1/chat/completions`,
      {
        model,
        messages: [{ role: "user", content: "Once upon a time" }],
        max_tokens: 24,
        temperature: 0,
        seed: 42,
      },
      { headers: admin },
    );
  const models = [
    testModel("stories", { split: "always", roles: [] }),
    testModel("stories-alone", { split: "never", roles: [] }),
  ];

  /** Each agent: its process, its address on the link and the namespace it runs in. */
  const hosts = new Map<string, { agent: AgentProcess; address: string; netns?: string }>();
  let host = "";
  let worker = "";

  before(async () => {
    netns = await makeNetns("wrk");
    gateway = await startGateway({
      config: {
        listen_host: netns.outside,
        join_token: JOIN_TOKEN,
        admin_key: ADMIN_KEY,
        heartbeat_interval_s: HEARTBEAT_S,
      },
    });
    const join = joinArgs(gateway, { joinToken: JOIN_TOKEN, heartbeatS: HEARTBEAT_S });
    // Each agent, and so its tunnel, on its own host's address on the link.
    for (const [nodeId, address, ns] of [
      ["node-a", netns.outside, undefined],
      ["node-b", netns.inside, netns.name],
    ] as const) {
      const agent = await startAgent({
        config: { node_id: nodeId, listen_host: address, auth_token: AUTH_TOKEN, models },
        args: join,
        netns: ns,
      });
      hosts.set(nodeId, { agent, address, netns: ns });
    }
    await waitUntil(
      async () => (await status()).peers.filter((entry) => entry.tunnel).length === 2,
      "both agents to register their tunnels",
    );
  });

  after(async () => {
    for (const { agent } of hosts.values()) await stopAgent(agent);
    if (gateway) await stopAgent(gateway);
    await netns?.remove();
  });

  test("a group across the link answers as one node does; the tunnel carries the layers", async () => {
    const alone = await chat("stories-alone");
    assert.equal(alone.status, 200, alone.text);
    // One engine computing at a time on this machine: the single-node server stops first.
    const unloaded = await postJson(
      `${gateway.url}/api/nodes/${String(alone.headers["x-rolemesh-node"])}/commands/model.unload`,
      { model_id: "stories-alone" },
      { headers: admin },
    );
    assert.equal(unloaded.status, 200, unloaded.text);

    const split = await chat("stories");
    assert.equal(split.status, 200, split.text);
    assert.equal(split.body.choices[0]!.message.content, alone.body.choices[0]!.message.content);
    host = String(split.headers["x-rolemesh-node"]);
    worker = host === "node-a" ? "node-b" : "node-a";
    await waitUntil(async () => {
      const link = (await peer(host))?.split_groups[0]?.links[0];
      return link?.node_id === worker && link.state === "connected" && link.bytes_sent > 100_000;
    }, "the host to report a connected link that carried the model's layers");
    assert.deepEqual(
      (await peer(worker))!.split_groups.map((group) => [group.role, group.host]),
      [["worker", host]],
    );
  });

  test("the worker's rpc-server cannot be reached from the host; its tunnel relays nothing without a fleet certificate", async () => {
    const { agent, address } = hosts.get(worker)!;
    const record = JSON.parse(
      await readFile(join(agent.stateDir, "servers", "rpc-server.cpu_0.json"), "utf8"),
    ) as { pid: number; port: number };
    assert.deepEqual(await listeningSockets(record.pid), [`127.0.0.1:${record.port}`]);
    // From the host's machine to the worker's address at the rpc-server's port.
    assert.equal(await dial(hosts.get(host)!.netns, address, record.port), "ECONNREFUSED");

    // TLS without a client certificate to the worker's tunnel, across the link: closed, and
    // nothing answered.
    const { port } = (await peer(worker))!.tunnel!;
    assert.equal((await probeWithoutCertificate(address, port)).length, 0);
  });
});

/**
 * How a TCP connection to `host:port` made from namespace `netns` (this one when undefined)
 * ends: "connected", or the error's code.
 */
async function dial(netns: string | undefined, host: string, port: number): Promise<string> {
  const script = `require("node:net").connect(${port}, ${JSON.stringify(host)})
    .on("connect", () => { console.log("connected"); process.exit(0); })
    .on("error", (err) => { console.log(err.code); process.exit(0); });`;
  const command = [...(netns ? ["ip", "netns", "exec", netns] : []), process.execPath];
  const { stdout } = await run(command[0]!, [...command.slice(1), "-e", script]);
  return stdout.trim();
}
