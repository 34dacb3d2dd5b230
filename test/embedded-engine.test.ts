/**
 * The embedded engine (SPEC §6): real llama.cpp inference through node-llama-cpp on the 1 MB
 * stories260K model, started and supervised by the agent like llama-server. One engine at a
 * time and one thread each: ggml busy-waits, and this machine has two cores.
 */
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { once } from "node:events";
import { createServer } from "node:net";
import { join } from "node:path";
import { describe, test } from "node:test";
import type { NodeInventory } from "../src/protocol/inventory.js";
import { postJson, postStream, streamedText } from "./helpers/http-client.js";
import type { AgentProcess } from "./helpers/launcher.js";
import { ROOT, STORIES_MODEL, startAgent, stopAgent, waitUntil } from "./helpers/launcher.js";

const stories = (extra: Record<string, unknown> = {}) => ({
  model_id: "stories",
  path: STORIES_MODEL,
  ctx_size: 512,
  threads: 1,
  ...extra,
});

type Completion = {
  choices: { message?: { content: string }; text?: string; finish_reason: string }[];
  usage: { prompt_tokens: number; completion_tokens: number; total_tokens: number };
};

const chat = (extra: Record<string, unknown> = {}) => ({
  model: "stories",
  messages: [{ role: "user", content: "Tell me a story about a cat." }],
  max_tokens: 12,
  ...extra,
});

async function withAgent(
  config: Record<string, unknown>,
  work: (agent: AgentProcess) => Promise<void>,
) {
  const agent = await startAgent({ config: { engine: "embedded", ...config } });
  try {
    await work(agent);
  } finally {
    await stopAgent(agent);
  }
}

describe("embedded engine through the agent", () => {
  test("chat and completion, streamed and not: text, usage, finish_reason length; seeded greedy output repeats", async () => {
    await withAgent({ models: [stories()] }, async (agent) => {
      const url = (path: string) => `${agent.url}${path}`;
      const plain = await postJson<Completion>(
        url("/v1/chat/completions"),
        chat({ temperature: 0, seed: 7 }),
      );
      assert.equal(plain.status, 200, plain.text);
      const [choice] = plain.body.choices;
      assert.ok(choice?.message?.content.trim(), "non-empty text");
      assert.equal(choice?.finish_reason, "length");
      assert.equal(plain.body.usage.completion_tokens, 12);
      assert.ok(plain.body.usage.prompt_tokens > 0);
      assert.equal(plain.body.usage.total_tokens, plain.body.usage.prompt_tokens + 12);

      const again = await postJson<Completion>(
        url("/v1/chat/completions"),
        chat({ temperature: 0, seed: 7 }),
      );
      assert.equal(
        again.body.choices[0]?.message?.content,
        choice?.message?.content,
        "same seed, same text",
      );

      const streamed = await postStream(
        url("/v1/chat/completions"),
        chat({ stream: true, stream_options: { include_usage: true } }),
      );
      assert.equal(streamed.status, 200);
      assert.ok(streamedText(streamed.events).trim());
      assert.equal(streamed.events.at(-1), "[DONE]");
      const usage = streamed.events.at(-2) as Completion;
      assert.equal(usage.usage.completion_tokens, 12);
      const finish = streamed.events.at(-3) as Completion;
      assert.equal(finish.choices[0]?.finish_reason, "length");

      const text = await postJson<Completion>(url("/v1/completions"), {
        model: "stories",
        prompt: "Once upon a time",
        max_tokens: 10,
        temperature: 0,
      });
      assert.equal(text.status, 200, text.text);
      assert.match(text.body.choices[0]?.text ?? "", /\w+/);
      assert.equal(text.body.choices[0]?.finish_reason, "length");
      assert.equal(text.body.usage.completion_tokens, 10);

      const textStream = await postStream(url("/v1/completions"), {
        model: "stories",
        prompt: "Once upon a time",
        max_tokens: 10,
        stream: true,
      });
      assert.ok(streamedText(textStream.events).trim());
      assert.equal(textStream.events.at(-1), "[DONE]");

      const embedding = await postJson<{ data: { embedding: number[] }[] }>(url("/v1/embeddings"), {
        model: "stories",
        input: ["hello", "world"],
      });
      assert.equal(embedding.status, 200, embedding.text);
      assert.equal(embedding.body.data.length, 2);
      assert.equal(embedding.body.data[0]?.embedding.length, 64);
    });
  });

  test("parallel 2: two streams progress together; aborting one frees its sequence for a third", async () => {
    await withAgent(
      { max_pending_requests_per_device: 2, models: [stories({ parallel: 2, ctx_size: 2048 })] },
      async (agent) => {
        // Load first, so the streams below race only each other.
        assert.equal((await postJson(`${agent.url}/v1/chat/completions`, chat())).status, 200);
        const long = chat({ stream: true, max_tokens: 1500, temperature: 1, seed: 3 });
        const seen: string[] = [];
        let stopB: (() => void) | undefined;
        const bDone = new Promise<void>((resolve) => (stopB = resolve));
        const a = postStream(`${agent.url}/v1/chat/completions`, long, {
          onEvent: () => {
            seen.push("a");
            return seen.filter((who) => who === "a").length >= 20 ? "abort" : undefined;
          },
        });
        let cFirstWhileBRunning = false;
        let bFinished = false;
        const b = postStream(`${agent.url}/v1/chat/completions`, long, {
          onEvent: (event) => {
            seen.push("b");
            if (event === "[DONE]") bFinished = true;
          },
        }).finally(() => stopB?.());
        await a;
        const interleaved = seen.slice(0, seen.lastIndexOf("a"));
        assert.ok(interleaved.includes("b"), "b streamed while a was streaming");
        // The agent frees a's turn; the engine must have freed a's sequence for c to start now.
        await waitUntil(
          async () =>
            (await agent.json<NodeInventory>("/v1/node/inventory")).devices[0]?.queue.in_flight ===
            1,
          "a's turn to be released",
        );
        const c = await postStream(
          `${agent.url}/v1/chat/completions`,
          chat({ stream: true, max_tokens: 5 }),
          {
            onEvent: () => {
              if (!bFinished) cFirstWhileBRunning = true;
            },
          },
        );
        assert.equal(c.status, 200, c.text);
        assert.ok(cFirstWhileBRunning, "c got a sequence while b still held the other");
        await bDone;
        assert.equal((await b).status, 200);
      },
    );
  });

  test("SIGKILL of the engine mid-stream: SSE error event, then a restarted engine serves", async () => {
    await withAgent({ models: [stories({ ctx_size: 2048 })] }, async (agent) => {
      const answer = await postStream(
        `${agent.url}/v1/chat/completions`,
        chat({ stream: true, max_tokens: 1500 }),
        {
          onEvent: async (_event, index) => {
            if (index !== 2) return;
            const pid = (await agent.json<NodeInventory>("/v1/node/inventory")).devices[0]?.server
              .pid;
            assert.ok(pid);
            process.kill(pid, "SIGKILL");
          },
        },
      );
      const last = answer.events.at(-1) as { error?: { code: string } };
      assert.equal(last.error?.code, "upstream_error");
      const failed = await waitUntil(async () => {
        const device = (await agent.json<NodeInventory>("/v1/node/inventory")).devices[0];
        return device?.server.state === "failed" ? device : undefined;
      }, "the device to show failed");
      assert.equal(failed.last_error?.signal, "SIGKILL");
      const next = await postJson(`${agent.url}/v1/chat/completions`, chat());
      assert.equal(next.status, 200, next.text);
      assert.equal(
        (await agent.json<NodeInventory>("/v1/node/inventory")).devices[0]?.server.restarts,
        1,
      );
    });
  });
});

describe("embedded server process", () => {
  test("/health answers 503 Loading model while the model loads, then 200", async () => {
    const port = await freePort();
    const server = spawn(
      process.execPath,
      [
        "--import",
        "tsx",
        join(ROOT, "src/agent/engines/embedded/embedded-server.ts"),
        ...[
          "-m",
          STORIES_MODEL,
          "--port",
          String(port),
          "--alias",
          "stories",
          "-c",
          "512",
          "-t",
          "1",
          "-ngl",
          "0",
        ],
      ],
      { cwd: ROOT, stdio: ["ignore", "ignore", "pipe"], detached: true },
    );
    try {
      const statuses: number[] = [];
      let loadingBody = "";
      await waitUntil(
        async () => {
          const res = await fetch(`http://127.0.0.1:${port}/health`).catch(() => undefined);
          if (!res) return false;
          const body = await res.text();
          if (res.status === 503) loadingBody = body;
          if (statuses.at(-1) !== res.status) statuses.push(res.status);
          return res.status === 200;
        },
        "the model to load",
        60_000,
        10,
      );
      assert.deepEqual(statuses, [503, 200]);
      assert.deepEqual(JSON.parse(loadingBody), {
        error: { message: "Loading model", type: "unavailable_error", code: 503 },
      });
      const models = (await (await fetch(`http://127.0.0.1:${port}/v1/models`)).json()) as {
        data: { id: string }[];
      };
      assert.equal(models.data[0]?.id, "stories");
    } finally {
      process.kill(-(server.pid ?? 0), "SIGTERM");
      await once(server, "exit");
    }
  });
});

function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const probe = createServer().listen(0, "127.0.0.1", () => {
      const { port } = probe.address() as { port: number };
      probe.close(() => resolve(port));
    });
  });
}
