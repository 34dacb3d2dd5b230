/**
 * Nodes that stop answering, through real processes (issue 17): an agent frozen with SIGSTOP
 * (the kernel still accepts its connections, so nothing fails — it just never answers) and a
 * node that leaves the registry with requests in flight. The gateway must not hold its clients
 * for `request_timeout_s`: a request that received no byte goes to another node, one already
 * answered in part ends with an error.
 */
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import type { StatusResponse } from "../src/protocol/registry.js";
import { postJson, postStream } from "./helpers/http-client.js";
import type { AgentProcess } from "./helpers/launcher.js";
import {
  joinArgs,
  NEEDS_FAKE,
  startAgent,
  startGateway,
  stopAgent,
  testModel,
  waitUntil,
} from "./helpers/launcher.js";

const JOIN_TOKEN = "join-token-for-tests-0123";
/** Long enough for the gateway's deadline or lease to act, far short of `request_timeout_s`. */
const GENEROUS = { timeout: 90_000 };

const chat = (model: string, extra: Record<string, unknown> = {}) => ({
  model,
  messages: [{ role: "user", content: "Once upon a time" }],
  max_tokens: 4,
  ...extra,
});

interface NodeSpec {
  nodeId: string;
  models: Record<string, unknown>[];
  /** Loaded before the tests start, so the gateway sees the node ready. */
  load: string;
  env?: Record<string, string>;
}

interface Fleet {
  gateway: AgentProcess;
  nodes: Map<string, AgentProcess>;
}

/** A gateway with agents registered and their first model loaded; stopped after the suite. */
function fleet(gatewayConfig: Record<string, unknown>, specs: NodeSpec[]): Fleet {
  // The gateway is filled in by `before`, ahead of every test.
  const fleet = { nodes: new Map<string, AgentProcess>() } as Fleet;
  before(async () => {
    fleet.gateway = await startGateway({
      config: { join_token: JOIN_TOKEN, heartbeat_interval_s: 1, ...gatewayConfig },
    });
    for (const spec of specs) {
      const agent = await startAgent({
        config: { node_id: spec.nodeId, models: spec.models },
        args: joinArgs(fleet.gateway, { joinToken: JOIN_TOKEN }),
        env: spec.env,
      });
      fleet.nodes.set(spec.nodeId, agent);
      const loaded = await postJson(`${agent.url}/v1/node/models/${spec.load}/load`, {});
      assert.equal(loaded.status, 200, loaded.text);
    }
    await waitForServing(
      fleet.gateway,
      specs.map((spec) => spec.nodeId),
    );
  });
  after(async () => {
    for (const agent of fleet.nodes.values()) {
      // A test that failed while a node was frozen must not leave it stopped forever.
      agent.signal("SIGCONT");
      await stopAgent(agent);
    }
    await stopAgent(fleet.gateway);
  });
  return fleet;
}

/** Waits until the gateway lists every node in `nodeIds` as serving. */
async function waitForServing(gateway: AgentProcess, nodeIds: string[]): Promise<void> {
  await waitUntil(
    async () => {
      const { peers } = await gateway.json<StatusResponse>("/api/status");
      return nodeIds.every((id) =>
        peers.some((peer) => peer.node_id === id && peer.state === "serving"),
      );
    },
    `${nodeIds.join(", ")} to be serving at the gateway`,
  );
}

/** Runs `body` with `agent` stopped (SIGSTOP), and lets it go on afterwards whatever happened. */
async function whileFrozen<T>(agent: AgentProcess, body: () => Promise<T>): Promise<T> {
  agent.signal("SIGSTOP");
  try {
    return await body();
  } finally {
    agent.signal("SIGCONT");
  }
}

/** True once the gateway logged that it gave up on `nodeId` for a request and tried another. */
const skipped = (gateway: AgentProcess, nodeId: string) =>
  gateway.output.some(
    (line) => line.includes("trying the next node") && line.includes(`"node_id":"${nodeId}"`),
  );

describe("a frozen agent and the first-byte deadline", () => {
  // The lease is long: only the first-byte deadline can take requests off the frozen node.
  const handle = fleet({ lease_s: 300, first_byte_timeout_s: 5 }, [
    { nodeId: "frozen", models: [testModel("stories", { roles: ["chat"] })], load: "stories" },
    {
      nodeId: "steady",
      models: [testModel("stories", { roles: ["chat"] }), testModel("cold", { roles: [] })],
      load: "stories",
      // Loading and generating both take longer than the gateway's first-byte deadline.
      env: { FAKE_LLAMA_LOAD_MS: "8000", FAKE_LLAMA_TOKEN_MS: "150" },
    },
  ]);

  test("requests the frozen node holds are served by the other node", GENEROUS, async () => {
    const { gateway } = handle;
    await whileFrozen(handle.nodes.get("frozen")!, async () => {
      // Conversations are ranked over both nodes: the frozen one is first for some of these.
      for (let i = 0; i < 6; i++) {
        const tale = { messages: [{ role: "user", content: `Tell me tale number ${i}` }] };
        const answer = await postJson(`${gateway.url}/v1/chat/completions`, chat("chat", tale));
        assert.equal(answer.status, 200, answer.text);
        assert.equal(answer.headers["x-rolemesh-node"], "steady");
      }
    });
    assert.ok(skipped(gateway, "frozen"), "the frozen node was tried first at least once");
  });

  test(
    "a cold load and a long unstreamed answer outlast the deadline: the agent shows it is working",
    { ...GENEROUS, ...NEEDS_FAKE },
    async () => {
      const { gateway } = handle;
      const answer = await postJson(
        `${gateway.url}/v1/chat/completions`,
        chat("cold", { max_tokens: 60 }),
      );
      assert.equal(answer.status, 200, answer.text);
      assert.equal(answer.headers["x-rolemesh-node"], "steady");
      assert.ok(!skipped(gateway, "steady"), "the working node was never given up on");
    },
  );
});

describe("a node that leaves with requests in flight", () => {
  // No first-byte deadline: only the node's departure (its lease running out) can act.
  const handle = fleet({ lease_s: 3, first_byte_timeout_s: 0 }, [
    {
      nodeId: "leaving",
      models: [testModel("stories", { roles: ["chat"] }), testModel("solo", { roles: [] })],
      load: "stories",
      env: { FAKE_LLAMA_TOKEN_MS: "200" },
    },
    { nodeId: "staying", models: [testModel("stories", { roles: ["chat"] })], load: "stories" },
  ]);

  test("a request that received nothing yet is sent to another node", GENEROUS, async () => {
    const { gateway } = handle;
    await whileFrozen(handle.nodes.get("leaving")!, async () => {
      // Two at once: the second goes to whichever node the first did not.
      const answers = await Promise.all(
        [0, 1].map(() => postJson(`${gateway.url}/v1/chat/completions`, chat("chat"))),
      );
      for (const answer of answers) {
        assert.equal(answer.status, 200, answer.text);
        assert.equal(answer.headers["x-rolemesh-node"], "staying");
      }
    });
    assert.ok(skipped(gateway, "leaving"), "a request was taken off the leaving node");
  });

  test(
    "a stream already under way ends with an error event instead of hanging",
    { ...GENEROUS, ...NEEDS_FAKE },
    async () => {
      const leaving = handle.nodes.get("leaving")!;
      // Back from any earlier freeze, the agent has registered again.
      await waitForServing(handle.gateway, ["leaving"]);
      try {
        const streamed = await postStream(
          `${handle.gateway.url}/v1/chat/completions`,
          chat("solo", { stream: true, max_tokens: 200 }),
          {
            onEvent: (_event, index) => {
              if (index === 0) leaving.signal("SIGSTOP");
            },
          },
        );
        assert.equal(streamed.status, 200);
        assert.equal(streamed.headers["x-rolemesh-node"], "leaving");
        const last = streamed.events.at(-1) as { error?: { code?: string } };
        assert.equal(last.error?.code, "upstream_error", streamed.text);
      } finally {
        leaving.signal("SIGCONT");
      }
    },
  );
});
