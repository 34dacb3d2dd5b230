/**
 * Per-device scheduling through the agent: model switches wait for the device to drain,
 * backpressure, and clients that leave.
 */
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import type { NodeInventory } from "../src/protocol/inventory.js";
import { assertError, postJson, postStream } from "./helpers/http-client.js";
import { NEEDS_FAKE, startAgent, testModel, waitUntil } from "./helpers/launcher.js";
import type { AgentProcess } from "./helpers/launcher.js";

const chat = (model: string, extra: Record<string, unknown> = {}) => ({
  model,
  messages: [{ role: "user", content: "Once upon a time" }],
  max_tokens: 8,
  ...extra,
});

type ErrorAnswer = { error: { code: string } };

async function device(agent: AgentProcess) {
  const inventory = await agent.json<NodeInventory>("/v1/node/inventory");
  return inventory.devices[0]!;
}

/** The fake llama-server's own counters, read from the managed server's port. */
async function fakeStats(
  agent: AgentProcess,
): Promise<{ active: number; aborted: number; completed: number }> {
  const port = (await device(agent)).server.port;
  const res = await fetch(`http://127.0.0.1:${port}/fake/stats`);
  return (await res.json()) as never;
}

describe("model switch on a one-device node", () => {
  test("waits for the in-flight request, then serves the other model", async () => {
    const agent = await startAgent({
      config: { models: [testModel("a"), testModel("b")] },
      env: { FAKE_LLAMA_TOKEN_MS: "20" },
    });
    const order: string[] = [];
    let switchSent: Promise<unknown> | undefined;
    const first = postStream(
      `${agent.url}/v1/chat/completions`,
      chat("a", { stream: true, max_tokens: 30 }),
      {
        onEvent: (_event, index) => {
          if (index === 1) {
            switchSent = postJson(`${agent.url}/v1/chat/completions`, chat("b")).then((answer) => {
              order.push("b");
              return answer;
            });
          }
        },
      },
    ).then((answer) => {
      order.push("a");
      return answer;
    });
    const streamed = await first;
    assert.equal(streamed.events.at(-1), "[DONE]", "the in-flight request on model a completed");
    const switched = (await switchSent) as { status: number; headers: Record<string, unknown> };
    assert.equal(switched.status, 200);
    assert.equal(switched.headers["x-rolemesh-model"], "b");
    assert.deepEqual(order, ["a", "b"]);
    assert.equal((await device(agent)).server.model_id, "b");
  });
});

// The fake's paced tokens (FAKE_LLAMA_TOKEN_MS) hold a request in flight while the queue fills;
// a real server finishes the first before the others arrive.
describe("backpressure", NEEDS_FAKE, () => {
  test("parallel 1, 2 pending: the third concurrent request gets 503 queue_full at once; the first two complete", async () => {
    const agent = await startAgent({
      config: { max_pending_requests_per_device: 2, models: [testModel("a", { parallel: 1 })] },
      env: { FAKE_LLAMA_TOKEN_MS: "20" },
    });
    // Load first so the three requests race only for queue places.
    assert.equal((await postJson(`${agent.url}/v1/chat/completions`, chat("a"))).status, 200);
    const body = chat("a", { max_tokens: 40 });
    const first = postJson(`${agent.url}/v1/chat/completions`, body);
    await waitUntil(
      async () => (await device(agent)).queue.in_flight === 1,
      "the first request to run",
    );
    const second = postJson(`${agent.url}/v1/chat/completions`, body);
    await waitUntil(
      async () => (await device(agent)).queue.pending === 1,
      "the second request to queue",
    );
    const started = Date.now();
    const third = await postJson<ErrorAnswer>(`${agent.url}/v1/chat/completions`, body);
    assertError(third, 503, "queue_full");
    assert.ok(Number(third.headers["retry-after"]) >= 1);
    assert.ok(Date.now() - started < 400, "rejected without waiting for a place");
    assert.equal((await first).status, 200);
    assert.equal((await second).status, 200);
  });
});

describe("clients that leave", NEEDS_FAKE, () => {
  test("abort mid-stream closes the upstream request within 1 s", async () => {
    const agent = await startAgent({
      config: { models: [testModel("a")] },
      env: { FAKE_LLAMA_TOKEN_MS: "50" },
    });
    let abortedAt = 0;
    await postStream(
      `${agent.url}/v1/chat/completions`,
      chat("a", { stream: true, max_tokens: 200 }),
      {
        onEvent: (_event, index) => {
          if (index < 2) return;
          abortedAt = Date.now();
          return "abort";
        },
      },
    );
    await waitUntil(
      async () => (await fakeStats(agent)).aborted === 1,
      "the upstream generation to stop",
      1000,
    );
    assert.ok(Date.now() - abortedAt < 1000);
    await waitUntil(
      async () => (await device(agent)).queue.in_flight === 0,
      "the device's turn to be freed",
    );
  });

  test("a queued client that leaves frees its place", async () => {
    const agent = await startAgent({
      config: { max_pending_requests_per_device: 2, models: [testModel("a")] },
      env: { FAKE_LLAMA_TOKEN_MS: "20" },
    });
    assert.equal((await postJson(`${agent.url}/v1/chat/completions`, chat("a"))).status, 200);
    const running = postJson(`${agent.url}/v1/chat/completions`, chat("a", { max_tokens: 60 }));
    await waitUntil(
      async () => (await device(agent)).queue.in_flight === 1,
      "the first request to run",
    );
    const leaving = new AbortController();
    const queued = postJson(`${agent.url}/v1/chat/completions`, chat("a"), {
      signal: leaving.signal,
    });
    await waitUntil(
      async () => (await device(agent)).queue.pending === 1,
      "the second request to queue",
    );
    leaving.abort();
    await assert.rejects(queued);
    await waitUntil(
      async () => (await device(agent)).queue.pending === 0,
      "the queue place to be freed",
    );
    const admitted = postJson(`${agent.url}/v1/chat/completions`, chat("a"));
    assert.equal((await running).status, 200);
    assert.equal((await admitted).status, 200, "the freed place admitted a new request");
  });
});

describe("admin load and unload", () => {
  test("load starts the server and answers once ready; unload stops it", async () => {
    const agent = await startAgent({ config: { models: [testModel("a")] } });
    const loaded = await postJson<{ device: string; server: { state: string } }>(
      `${agent.url}/v1/node/models/a/load`,
      {},
    );
    assert.equal(loaded.status, 200, loaded.text);
    assert.equal(loaded.body.device, "cpu:0");
    assert.equal(loaded.body.server.state, "ready");
    const unloaded = await postJson(`${agent.url}/v1/node/models/a/unload`, {});
    assert.equal(unloaded.status, 200, unloaded.text);
    const after = await device(agent);
    assert.equal(after.server.state, "stopped");
    assert.equal(after.server.pid, null);
    const missing = await postJson<ErrorAnswer>(`${agent.url}/v1/node/models/nope/load`, {});
    assertError(missing, 404, "model_not_found");
  });
});
