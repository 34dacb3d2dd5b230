/**
 * Routing by prompt prefix (SPEC §13, issue 21): a gateway and three agents. A conversation's
 * turns land on one node, where (with the real llama-server) its prompt is cached; one hot
 * prefix spreads once its node reaches the load bound; a node that leaves moves only its own
 * conversations.
 */
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import type { StatusResponse } from "../src/protocol/registry.js";
import { postJson, postStream } from "./helpers/http-client.js";
import type { AgentProcess } from "./helpers/launcher.js";
import {
  joinArgs,
  NEEDS_FAKE,
  REAL_ENGINE,
  startAgent,
  startGateway,
  stopAgent,
  testModel,
  waitUntil,
} from "./helpers/launcher.js";

const HEARTBEAT_S = 1;
const NODES = ["node-a", "node-b", "node-c"];
type Chat = {
  choices: { message: { content: string } }[];
  usage: { prompt_tokens_details?: { cached_tokens: number } };
};

/** Turn `turns` of conversation `id`: its own system prompt, then alternating turns. */
function conversation(id: number, turns: number) {
  const messages: { role: string; content: string }[] = [
    { role: "system", content: `You are storyteller number ${id}. Tell short tales of animals.` },
  ];
  for (let turn = 0; turn < turns; turn++) {
    if (turn > 0) messages.push({ role: "assistant", content: "Once upon a time, a cat sat." });
    messages.push({ role: "user", content: turn === 0 ? "Tell me a story." : "And then?" });
  }
  return { model: "stories", messages, max_tokens: 4, temperature: 0 };
}

describe("routing by prompt prefix", () => {
  let gateway: AgentProcess;
  const agents = new Map<string, AgentProcess>();
  /** The node each conversation went to, by conversation id. */
  const homes = new Map<number, string>();
  const chat = (body: unknown) => postJson<Chat>(`${gateway.url}/v1/chat/completions`, body);

  before(async () => {
    gateway = await startGateway({ config: { heartbeat_interval_s: HEARTBEAT_S } });
    for (const nodeId of NODES) {
      const agent = await startAgent({
        config: {
          node_id: nodeId,
          models: [testModel("stories", { parallel: 2, ctx_size: 1024 })],
          max_pending_requests_per_device: 16,
        },
        args: joinArgs(gateway, { heartbeatS: HEARTBEAT_S }),
        // Slow tokens keep the hot prefix's requests in flight together.
        env: { FAKE_LLAMA_TOKEN_MS: "100" },
      });
      agents.set(nodeId, agent);
      // Every node holds the model: affinity ranks the nodes that have it loaded.
      const loaded = await postJson(`${agent.url}/v1/node/models/stories/load`, {});
      assert.equal(loaded.status, 200, loaded.text);
    }
    await waitUntil(async () => {
      const { peers } = await gateway.json<StatusResponse>("/api/status");
      return peers.filter((peer) => peer.models[0]?.loaded_on.length).length === NODES.length;
    }, "every node to report the model loaded");
  });

  after(async () => {
    for (const agent of agents.values()) await stopAgent(agent);
    await stopAgent(gateway);
  });

  test("a conversation's turns land on one node: a miss, then hits, its prompt cached there", async () => {
    for (let id = 0; id < 8; id++) {
      const outcomes: string[] = [];
      for (let turns = 1; turns <= 3; turns++) {
        const answer = await chat(conversation(id, turns));
        assert.equal(answer.status, 200, answer.text);
        const node = String(answer.headers["x-rolemesh-node"]);
        assert.equal(node, homes.get(id) ?? node, `conversation ${id} moved at turn ${turns}`);
        homes.set(id, node);
        outcomes.push(String(answer.headers["x-rolemesh-affinity"]));
        if (REAL_ENGINE && turns > 1) {
          const cached = answer.body.usage.prompt_tokens_details?.cached_tokens ?? 0;
          assert.ok(cached > 0, `turn ${turns} of conversation ${id}: its prefix was cached`);
        }
      }
      assert.deepEqual(outcomes, ["miss", "hit", "hit"]);
    }
    assert.ok(new Set(homes.values()).size > 1, "conversations spread over the nodes");
    const metrics = await (await fetch(`${gateway.url}/metrics`)).text();
    assert.match(metrics, /rolemesh_gateway_affinity_total\{outcome="hit"\} 16/);
    assert.match(metrics, /rolemesh_gateway_affinity_total\{outcome="miss"\} 8/);
  });

  test("one hot prefix spreads once its node reaches the load bound", NEEDS_FAKE, async () => {
    const hot = { ...conversation(100, 1), max_tokens: 20, stream: true };
    const answers = await Promise.all(
      Array.from({ length: 9 }, () => postStream(`${gateway.url}/v1/chat/completions`, hot)),
    );
    const perNode = new Map<string, number>();
    const outcomes = new Set<string>();
    for (const answer of answers) {
      assert.equal(answer.status, 200);
      const node = String(answer.headers["x-rolemesh-node"]);
      perNode.set(node, (perNode.get(node) ?? 0) + 1);
      outcomes.add(String(answer.headers["x-rolemesh-affinity"]));
    }
    assert.ok(perNode.size > 1, `spread: ${JSON.stringify([...perNode])}`);
    assert.ok(outcomes.has("overflow"));
    // At most 1.25 × the mean of 9 over 3 nodes (with the request itself counted): 4.
    for (const [node, count] of perNode) assert.ok(count <= 4, `${node} took ${count}`);
  });

  test("a node that leaves moves only its own conversations", async () => {
    const leaving = homes.get(0)!;
    await stopAgent(agents.get(leaving)!);
    agents.delete(leaving);
    await waitUntil(
      async () =>
        !(await gateway.json<StatusResponse>("/api/status")).peers.some(
          (peer) => peer.node_id === leaving,
        ),
      "the node to leave",
    );
    for (const [id, home] of homes) {
      const answer = await chat(conversation(id, 4));
      assert.equal(answer.status, 200, answer.text);
      const node = String(answer.headers["x-rolemesh-node"]);
      if (home === leaving) {
        assert.notEqual(node, leaving);
        assert.equal(answer.headers["x-rolemesh-affinity"], "miss");
      } else {
        assert.equal(node, home, `conversation ${id} stays on ${home}`);
        assert.equal(answer.headers["x-rolemesh-affinity"], "hit");
      }
    }
  });
});
