/**
 * The agent's OpenAI API end to end: agent process → managed server (the fake llama-server,
 * or a real one when LLAMA_SERVER_BIN and ROLEMESH_TEST_MODEL are set).
 */
import assert from "node:assert/strict";
import { before, describe, test } from "node:test";
import type { NodeInventory } from "../src/protocol/inventory.js";
import { assertError, postJson, postStream, streamedText } from "./helpers/http-client.js";
import type { AgentProcess } from "./helpers/launcher.js";
import { LONG_STREAM, NEEDS_FAKE, startAgent, testModel, waitUntil } from "./helpers/launcher.js";

const chat = (extra: Record<string, unknown> = {}) => ({
  model: "stories",
  messages: [{ role: "user", content: "Tell me a story about a cat." }],
  max_tokens: 8,
  temperature: 0,
  ...extra,
});

describe("agent OpenAI API", () => {
  let agent: AgentProcess;

  before(async () => {
    agent = await startAgent({
      config: {
        models: [
          testModel("stories"),
          testModel("embedder", { roles: [], args: ["--embeddings"] }),
          testModel("other", { roles: [] }),
        ],
      },
      env: { FAKE_LLAMA_TOKEN_MS: "20" },
    });
  });

  test("chat completion, not streamed, with usage and node headers", async () => {
    const answer = await postJson<{
      choices: { message: { content: string }; finish_reason: string }[];
      usage: { completion_tokens: number };
      object: string;
    }>(`${agent.url}/v1/chat/completions`, chat());
    assert.equal(answer.status, 200, answer.text);
    assert.equal(answer.body.object, "chat.completion");
    assert.ok(answer.body.choices[0]?.message.content.length);
    assert.equal(answer.body.choices[0]?.finish_reason, "length");
    assert.equal(answer.body.usage.completion_tokens, 8);
    assert.equal(answer.headers["x-rolemesh-model"], "stories");
    assert.ok(answer.headers["x-rolemesh-node"]);
  });

  test("chat completion streamed: role chunk first, content, finish, [DONE], no-buffering headers", async () => {
    const answer = await postStream(
      `${agent.url}/v1/chat/completions`,
      chat({ stream: true, ...LONG_STREAM }),
    );
    assert.equal(answer.status, 200);
    assert.match(String(answer.headers["content-type"]), /^text\/event-stream/);
    assert.equal(answer.headers["cache-control"], "no-cache");
    assert.equal(answer.headers["x-accel-buffering"], "no");
    const [first] = answer.events as { choices: { delta: { role?: string } }[] }[];
    assert.equal(first?.choices[0]?.delta.role, "assistant");
    assert.equal(answer.events.at(-1), "[DONE]");
    assert.ok(streamedText(answer.events).length > 0);
    assert.ok(answer.chunks.length > 2, "events arrive as separate chunks, not one buffered body");
  });

  test("completion, streamed and not", async () => {
    const body = { model: "stories", prompt: "Once upon a time", max_tokens: 6, temperature: 0 };
    const plain = await postJson<{ choices: { text: string; finish_reason: string }[] }>(
      `${agent.url}/v1/completions`,
      body,
    );
    assert.equal(plain.status, 200, plain.text);
    assert.ok(plain.body.choices[0]?.text.length);
    const streamed = await postStream(`${agent.url}/v1/completions`, { ...body, stream: true });
    assert.equal(streamed.status, 200);
    assert.equal(streamed.events.at(-1), "[DONE]");
    assert.ok(streamedText(streamed.events).length > 0);
  });

  test(
    "the first SSE chunk reaches the client while the server is still generating",
    NEEDS_FAKE,
    async () => {
      const started = Date.now();
      let firstAt = 0;
      const answer = await postStream(
        `${agent.url}/v1/chat/completions`,
        chat({ stream: true, max_tokens: 25 }),
        {
          onEvent: (_event, index) => {
            if (index === 0) firstAt = Date.now();
          },
        },
      );
      const total = Date.now() - started;
      // 25 tokens at 20 ms each: the whole generation takes about 500 ms.
      assert.ok(
        firstAt - started < total / 2,
        `first event after ${firstAt - started} ms of ${total} ms`,
      );
      assert.equal(answer.events.at(-1), "[DONE]");
    },
  );

  test("a role names the model that has it", async () => {
    const answer = await postJson(
      `${agent.url}/v1/chat/completions`,
      chat({ model: "storyteller" }),
    );
    assert.equal(answer.status, 200, answer.text);
    assert.equal(answer.headers["x-rolemesh-model"], "stories");
  });

  test("/v1/models lists ids, roles and where each is loaded", async () => {
    const list = await agent.json<{
      object: string;
      data: { id: string; roles: string[]; loaded_on: string[] }[];
    }>("/v1/models");
    assert.equal(list.object, "list");
    const stories = list.data.find((entry) => entry.id === "stories");
    assert.deepEqual(stories?.roles, ["storyteller"]);
    assert.deepEqual(stories?.loaded_on, ["cpu:0"]);
    assert.ok(list.data.some((entry) => entry.id === "other"));
  });

  test("inventory shows the node, the device, its server and the models", async () => {
    const inventory = await agent.json<NodeInventory>("/v1/node/inventory");
    assert.ok(inventory.node_id);
    assert.equal(inventory.state, "serving");
    assert.ok(inventory.capabilities.cpu_cores > 0);
    assert.ok(inventory.capabilities.memory_total_mb > 0);
    const [device] = inventory.devices;
    assert.equal(device?.ref.id, "cpu:0");
    assert.equal(device?.server.state, "ready");
    assert.equal(device?.server.model_id, "stories");
    assert.ok((device?.server.pid ?? 0) > 0);
    const { last_active_at: lastActive, ...queue } = device!.queue;
    assert.deepEqual(queue, { in_flight: 0, pending: 0, limit: 2 });
    assert.ok(Date.parse(lastActive ?? "") > 0, "the request it served counts as activity");
    assert.ok(inventory.models.find((model) => model.id === "stories")?.size_bytes);
  });

  test("every failure is an OpenAI-shaped error with the SPEC §7 status", async () => {
    const url = `${agent.url}/v1/chat/completions`;
    const cases: [unknown, boolean, number, string, string | null][] = [
      ['{"messages": [', true, 400, "invalid_request", null],
      ["", true, 400, "invalid_request", null],
      [{ model: "stories", max_tokens: 4 }, false, 400, "invalid_request", "messages"],
      [chat({ max_tokens: "abc" }), false, 400, "invalid_request", "max_tokens"],
      [chat({ stream: "yes" }), false, 400, "invalid_request", "stream"],
      [chat({ model: "no-such-model" }), false, 404, "model_not_found", "model"],
    ];
    for (const [body, raw, status, code, param] of cases) {
      const answer = await postJson<{
        error: { code: string; param: string | null; message: string; type: string };
      }>(url, body, { raw });
      assert.equal(answer.status, status, `${JSON.stringify(body)} → ${answer.text}`);
      assert.equal(answer.body.error.code, code);
      assert.equal(answer.body.error.param, param);
      assert.ok(answer.body.error.message.length > 0);
      assert.ok(answer.body.error.type.length > 0);
    }
    const unknownPath = await fetch(`${agent.url}/v1/nope`);
    assert.equal(unknownPath.status, 404);
    assert.equal(
      ((await unknownPath.json()) as { error: { code: string } }).error.code,
      "not_found",
    );
  });

  test("a lone UTF-16 surrogate is a 400 naming the field, never relayed (llama-server would answer 500)", async () => {
    const lone = chat({ messages: [{ role: "user", content: "a cat \ud800" }] });
    const answer = await postJson(`${agent.url}/v1/chat/completions`, lone);
    assertError(answer, 400, "invalid_request");
    assert.match(answer.text, /"param":"messages\.0\.content"/);
    assert.match(answer.text, /unpaired UTF-16 surrogate/);
    const pair = chat({ messages: [{ role: "user", content: "a cat 🐈" }] });
    assert.equal((await postJson(`${agent.url}/v1/chat/completions`, pair)).status, 200);
  });

  test("a body over the limit is refused with 413", async () => {
    const huge = chat({ messages: [{ role: "user", content: "x".repeat(9 * 1024 * 1024) }] });
    const answer = await postJson<{ error: { code: string } }>(
      `${agent.url}/v1/chat/completions`,
      huge,
    );
    assert.equal(answer.status, 413);
    assert.equal(answer.body.error.code, "request_too_large");
  });

  test("a client never sees an upstream 'Loading model'", async () => {
    const answer = await postJson(`${agent.url}/v1/chat/completions`, chat({ model: "other" }));
    assert.equal(answer.status, 200, answer.text);
    assert.doesNotMatch(answer.text, /Loading model/);
    await waitUntil(async () => {
      const inventory = await agent.json<NodeInventory>("/v1/node/inventory");
      return inventory.devices[0]?.server.model_id === "other";
    }, "the device to switch to the other model");
  });

  test("embeddings are relayed to a server started with --embeddings", async () => {
    const answer = await postJson<{ data: { embedding: number[] }[] }>(
      `${agent.url}/v1/embeddings`,
      {
        model: "embedder",
        input: "hello",
      },
    );
    assert.equal(answer.status, 200, answer.text);
    assert.ok((answer.body.data[0]?.embedding.length ?? 0) > 0);
  });

  test("embeddings from a server without --embeddings are a 400 that says how to turn them on", async () => {
    const answer = await postJson(`${agent.url}/v1/embeddings`, {
      model: "stories",
      input: "hello",
    });
    assertError(answer, 400, "invalid_request");
    assert.match(answer.text, /--embeddings/);
  });
});

describe("agent auth", () => {
  test("with auth_token, every route but /healthz needs the bearer token", async () => {
    const agent = await startAgent({
      config: { auth_token: "s3cret-token", models: [testModel()] },
    });
    assert.equal((await fetch(`${agent.url}/healthz`)).status, 200);
    for (const path of ["/v1/models", "/v1/node/inventory"]) {
      const denied = await fetch(`${agent.url}${path}`);
      assert.equal(denied.status, 401, path);
      assert.equal(
        ((await denied.json()) as { error: { code: string } }).error.code,
        "invalid_api_key",
      );
      const wrong = await fetch(`${agent.url}${path}`, {
        headers: { authorization: "Bearer nope" },
      });
      assert.equal(wrong.status, 401, path);
      const allowed = await fetch(`${agent.url}${path}`, {
        headers: { authorization: "Bearer s3cret-token" },
      });
      assert.equal(allowed.status, 200, path);
    }
    const chatDenied = await postJson(`${agent.url}/v1/chat/completions`, chat());
    assert.equal(chatDenied.status, 401);
    assert.ok(
      !agent.output.some((line) => line.includes("s3cret-token")),
      "the token never appears in the agent's log",
    );
  });

  test("a non-loopback listen_host without auth_token refuses to start, saying why", async () => {
    const agent = await startAgent({ config: { listen_host: "0.0.0.0" }, expectExit: true });
    const { code } = await agent.exited;
    assert.equal(code, 2);
    assert.match(agent.output.join("\n"), /not a loopback address and auth_token is empty/);
  });
});
