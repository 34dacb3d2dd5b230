/**
 * What the gateway trusts of a registration (issue 17 #2, #3): a node id belongs to the agent
 * that first registered it — another process cannot take over a live node's record, its URL,
 * token and traffic, and learns so (409) — and an `agent_url` must be an agent's origin.
 */
import assert from "node:assert/strict";
import { stat } from "node:fs/promises";
import { join } from "node:path";
import { before, describe, test } from "node:test";
import type { StatusResponse } from "../src/protocol/registry.js";
import { assertError, postJson } from "./helpers/http-client.js";
import { hostCapabilities } from "./helpers/played-node.js";
import type { AgentProcess } from "./helpers/launcher.js";
import {
  joinArgs,
  startAgent,
  startGateway,
  stopAgent,
  testModel,
  waitUntil,
} from "./helpers/launcher.js";

const JOIN_TOKEN = "join-token-for-identity-0123";
const joinHeaders = { authorization: `Bearer ${JOIN_TOKEN}` };

describe("node identity", () => {
  let gateway: AgentProcess;
  let first: AgentProcess;
  const peer = async (nodeId: string) =>
    (await gateway.json<StatusResponse>("/api/status")).peers.find((p) => p.node_id === nodeId);
  const agent = (stateDir?: string) =>
    startAgent({
      config: { node_id: "gpu-1", models: [testModel()] },
      args: joinArgs(gateway, { joinToken: JOIN_TOKEN, heartbeatS: 1 }),
      ...(stateDir ? { stateDir } : {}),
    });

  before(async () => {
    gateway = await startGateway({ config: { join_token: JOIN_TOKEN, heartbeat_interval_s: 1 } });
    first = await agent();
    await waitUntil(async () => (await peer("gpu-1")) !== undefined, "the first agent to register");
  });

  test("the secret the gateway issued is kept in the agent's state dir, readable by its owner only", async () => {
    const file = join(first.stateDir, "node_secret");
    await waitUntil(async () => (await stat(file).catch(() => undefined))?.isFile(), "node_secret");
    assert.equal((await stat(file)).mode & 0o777, 0o600);
  });

  test("a second agent with the same node id is refused with 409 and says so; the first keeps its record", async () => {
    const second = await agent();
    await waitUntil(
      () => second.output.some((line) => line.includes("belongs to another agent")),
      "the second agent to report the conflict",
    );
    assert.ok(second.output.some((line) => /"level":50/.test(line) && line.includes("gpu-1")));
    assert.equal((await peer("gpu-1"))?.agent_url, first.url);
    await stopAgent(second);
  });

  test("a forged registration, however new its start time, cannot replace a live node", async () => {
    const forged = {
      node_id: "gpu-1",
      hostname: "evil",
      agent_url: "http://127.0.0.1:9",
      version: "0",
      capabilities: hostCapabilities("evil"),
      labels: {},
      started_at: 1e308,
      sequence: 1,
      snapshot: { state: "serving", devices: [], models: [] },
    };
    assertError(
      await postJson(`${gateway.url}/v1/nodes/register`, forged, { headers: joinHeaders }),
      409,
      "conflict",
    );
    const wrong = { ...forged, node_secret: "guessed-secret" };
    assertError(
      await postJson(`${gateway.url}/v1/nodes/register`, wrong, { headers: joinHeaders }),
      409,
      "conflict",
    );
    assertError(
      await postJson(
        `${gateway.url}/v1/nodes/heartbeat`,
        { ...wrong, sequence: 2 },
        { headers: joinHeaders },
      ),
      409,
      "conflict",
    );
    assertError(
      await postJson(
        `${gateway.url}/v1/nodes/deregister`,
        { ...wrong, sequence: 3 },
        { headers: joinHeaders },
      ),
      409,
      "conflict",
    );
    assert.equal((await peer("gpu-1"))?.agent_url, first.url);
    assert.ok(!gateway.output.some((line) => line.includes("guessed-secret")), "no secret logged");
  });

  test("the agent restarted on its own state dir keeps its identity, without waiting for the lease", async () => {
    first.signal("SIGKILL");
    await first.exited;
    const restarted = await agent(first.stateDir);
    await waitUntil(async () => (await peer("gpu-1"))?.agent_url === restarted.url, "the restart");
    assert.ok(!restarted.output.some((line) => line.includes("belongs to another agent")));
    await stopAgent(restarted);
  });

  test("an agent_url with a path, or on a link-local address, is refused before anything is stored", async () => {
    for (const [nodeId, agentUrl] of [
      ["pathy", "http://127.0.0.1:9/v1"],
      ["metadata", "http://169.254.169.254"],
    ] as const) {
      const node = {
        node_id: nodeId,
        hostname: nodeId,
        agent_url: agentUrl,
        version: "0",
        capabilities: hostCapabilities(nodeId),
        labels: {},
        started_at: 1,
        sequence: 1,
        snapshot: { state: "serving", devices: [], models: [] },
      };
      const answer = await postJson(`${gateway.url}/v1/nodes/register`, node, {
        headers: joinHeaders,
      });
      assertError(answer, 400, "invalid_request");
      assert.match(answer.text, /"param":"agent_url"/);
      assert.equal(await peer(nodeId), undefined);
    }
  });
});
