/**
 * Split inference (SPEC §12, issue 19) with the real llama-server and rpc-server of
 * `rolemesh engine build`: a gateway and two agents on loopback with their own state dirs, the
 * encrypted tunnel between them. One model may only be split (`split: always`), the same file
 * under another id never. At temperature 0 the split answer is the single-node answer; an
 * rpc-server killed costs a clean error and the group serves again once re-formed; a worker
 * gone leaves the host serving alone; a host gone makes its worker leave the group.
 */
import assert from "node:assert/strict";
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { readIdentity } from "../src/core/process/process-identity.js";
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
import { listeningSockets } from "./helpers/proc-net.js";
import { probeWithoutCertificate } from "./helpers/tunnel-kit.js";

const HEARTBEAT_S = 1;
const prompt = (model: string) => ({
  model,
  messages: [{ role: "user", content: "Once upon a time" }],
  max_tokens: 24,
  temperature: 0,
  seed: 42,
});
type Chat = { choices: { message: { content: string } }[] };

describe(
  "split inference over the tunnel",
  {
    skip: REAL_ENGINE ? false : "needs the real llama-server and rpc-server (npm run test:real)",
  },
  () => {
    let gateway: AgentProcess;
    const agents = new Map<string, AgentProcess>();
    const status = () => gateway.json<StatusResponse>("/api/status");
    const peer = async (nodeId: string): Promise<PeerStatus | undefined> =>
      (await status()).peers.find((entry) => entry.node_id === nodeId);
    const chat = (model: string) =>
      postJson<Chat>(`${gateway.url}/v1/chat/completions`, prompt(model));
    /** The rpc-server a worker runs for its CPU, from its pid record. */
    const rpcServerPid = async (worker: AgentProcess) =>
      (
        JSON.parse(
          await readFile(join(worker.stateDir, "servers", "rpc-server.cpu_0.json"), "utf8"),
        ) as { pid: number }
      ).pid;

    const startNode = (nodeId: string) =>
      startAgent({
        config: {
          node_id: nodeId,
          models: [
            testModel("stories", { split: "always", roles: [] }),
            testModel("stories-alone", { split: "never", roles: [] }),
          ],
        },
        args: joinArgs(gateway, { heartbeatS: HEARTBEAT_S }),
      });

    before(async () => {
      gateway = await startGateway({ config: { heartbeat_interval_s: HEARTBEAT_S } });
      for (const nodeId of ["node-a", "node-b"]) agents.set(nodeId, await startNode(nodeId));
      await waitUntil(async () => (await status()).peers.length === 2, "both agents to register");
    });

    after(async () => {
      for (const agent of agents.values()) await stopAgent(agent);
      await stopAgent(gateway);
    });

    let host = "";
    let worker = "";
    let single = "";

    test("at temperature 0 the split answer is the single-node answer; every side shows the group", async () => {
      const alone = await chat("stories-alone");
      assert.equal(alone.status, 200, alone.text);
      single = alone.body.choices[0]!.message.content;
      // One engine computing at a time on this machine: the single-node server stops first.
      const unloaded = await postJson(
        `${gateway.url}/api/nodes/${String(alone.headers["x-rolemesh-node"])}/commands/model.unload`,
        { model_id: "stories-alone" },
      );
      assert.equal(unloaded.status, 200, unloaded.text);

      const split = await chat("stories");
      assert.equal(split.status, 200, split.text);
      assert.equal(split.body.choices[0]!.message.content, single);
      host = String(split.headers["x-rolemesh-node"]);
      worker = host === "node-a" ? "node-b" : "node-a";

      await waitUntil(async () => {
        const group = (await peer(host))?.split_groups.find((entry) => entry.role === "host");
        return group?.links[0]?.state === "connected" && group.links[0].bytes_sent > 0;
      }, "the host to report its group and its link");
      const group = (await peer(host))!.split_groups[0]!;
      assert.deepEqual(
        group.members.map((member) => member.node_id),
        [host, worker],
      );
      assert.ok(Math.abs(group.members[0]!.fraction + group.members[1]!.fraction - 1) < 0.001);
      assert.deepEqual(
        (await peer(worker))!.split_groups.map((entry) => [entry.role, entry.host]),
        [["worker", host]],
      );
    });

    test("rpc-server listens on loopback only; a connection without a fleet certificate gets nothing", async () => {
      const sockets = await listeningSockets(await rpcServerPid(agents.get(worker)!));
      assert.ok(sockets.length > 0);
      for (const address of sockets) assert.match(address, /^127\.0\.0\.1:/);

      // TLS without a client certificate to the worker's tunnel: closed, nothing answered.
      const { port } = (await peer(worker))!.tunnel!;
      assert.equal((await probeWithoutCertificate("127.0.0.1", port)).length, 0);
    });

    test("an rpc-server killed: a clean error at most, then the group serves again", async () => {
      const workerAgent = agents.get(worker)!;
      const killed = await rpcServerPid(workerAgent);
      process.kill(killed, "SIGKILL");
      // llama-server aborts on its next request over the dead link (llama.cpp behaviour): that
      // request gets a clean error; the worker restarts its rpc-server, the host its server.
      const first = await chat("stories");
      if (first.status !== 200) assert.equal(typeof first.body, "object", first.text);
      await waitUntil(
        async () => {
          const answer = await chat("stories");
          return answer.status === 200 && answer.body.choices[0]!.message.content === single;
        },
        "the group to serve again",
        60_000,
      );
      assert.notEqual(await rpcServerPid(workerAgent), killed);
    });

    test("a worker gone: the host serves alone once the worker's lease ends", async () => {
      const workerAgent = agents.get(worker)!;
      workerAgent.signal("SIGKILL");
      await workerAgent.exited;
      agents.delete(worker);
      await waitUntil(async () => (await peer(worker)) === undefined, "the worker to leave");
      const answer = await chat("stories");
      assert.equal(answer.status, 200, answer.text);
      assert.equal(answer.body.choices[0]!.message.content, single);
      await waitUntil(
        async () => (await peer(host))?.split_groups.length === 0,
        "the host to report no group",
      );
    });

    test("a node that joins re-forms the group; its host gone, the worker leaves it and serves alone", async () => {
      agents.set("node-c", await startNode("node-c"));
      await waitUntil(async () => (await peer("node-c"))?.tunnel !== undefined, "node-c to join");
      const joined = await chat("stories");
      assert.equal(joined.status, 200, joined.text);
      const newHost = String(joined.headers["x-rolemesh-node"]);
      const survivor = newHost === "node-c" ? host : "node-c";
      await waitUntil(
        async () => (await peer(survivor))?.split_groups[0]?.host === newHost,
        "the new group's worker to report it",
      );
      const rpcServer = await rpcServerPid(agents.get(survivor)!);

      const hostAgent = agents.get(newHost)!;
      hostAgent.signal("SIGKILL");
      await hostAgent.exited;
      agents.delete(newHost);
      // Told to leave once the host's lease ended: no group, no rpc-server admitting it.
      await waitUntil(
        async () => (await peer(survivor))?.split_groups.length === 0,
        "the worker to leave the group of the host that left",
      );
      await waitUntil(
        async () => (await readIdentity(rpcServer)) === null,
        "the worker's rpc-server to stop",
      );
      const alone = await chat("stories");
      assert.equal(alone.status, 200, alone.text);
      assert.equal(alone.headers["x-rolemesh-node"], survivor);
      assert.equal(alone.body.choices[0]!.message.content, single);
    });
  },
);
