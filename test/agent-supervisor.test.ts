/**
 * The supervisor through the agent process: readiness, startup timeouts, crashes and backoff,
 * leftovers of a killed agent, graceful shutdown.
 */
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { mkdir, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { describe, test } from "node:test";
import type { NodeInventory } from "../src/protocol/inventory.js";
import { readIdentity } from "../src/core/process/process-identity.js";
import { assertError, postJson, postStream } from "./helpers/http-client.js";
import {
  NEEDS_FAKE,
  startAgent,
  taggedProcesses,
  tempDir,
  testModel,
  waitUntil,
} from "./helpers/launcher.js";

const chat = (extra: Record<string, unknown> = {}) => ({
  model: "stories",
  messages: [{ role: "user", content: "Once upon a time" }],
  max_tokens: 8,
  ...extra,
});

type ErrorAnswer = { error: { code: string; message: string } };

describe("readiness and startup timeout", NEEDS_FAKE, () => {
  test("a load slower than the timeout answers 503 model_loading_timeout with Retry-After, then serves", async () => {
    const agent = await startAgent({
      config: { llama_server_startup_timeout_s: 0.5, models: [testModel()] },
      env: { FAKE_LLAMA_LOAD_MS: "2000" },
    });
    const early = await postJson<ErrorAnswer>(`${agent.url}/v1/chat/completions`, chat());
    assertError(early, 503, "model_loading_timeout");
    assert.ok(Number(early.headers["retry-after"]) >= 1);
    assert.doesNotMatch(early.text, /Loading model/);
    // The server kept loading in the background: a later request is served.
    await waitUntil(async () => {
      const inventory = await agent.json<NodeInventory>("/v1/node/inventory");
      return inventory.devices[0]?.server.state === "ready";
    }, "the server to finish loading");
    const later = await postJson(`${agent.url}/v1/chat/completions`, chat());
    assert.equal(later.status, 200, later.text);
  });

  test("a load inside the timeout makes the request wait and succeed", async () => {
    const agent = await startAgent({
      config: { llama_server_startup_timeout_s: 20, models: [testModel()] },
      env: { FAKE_LLAMA_LOAD_MS: "800" },
    });
    const answer = await postJson(`${agent.url}/v1/chat/completions`, chat());
    assert.equal(answer.status, 200, answer.text);
    assert.doesNotMatch(answer.text, /Loading model/);
  });

  test("a server that reports a different model is never counted ready", async () => {
    const agent = await startAgent({
      config: { llama_server_startup_timeout_s: 1, models: [testModel()] },
      env: { FAKE_LLAMA_REPORT_MODEL: "somebody-else" },
    });
    const answer = await postJson<ErrorAnswer>(`${agent.url}/v1/chat/completions`, chat());
    assertError(answer, 503, "model_loading_timeout");
    const inventory = await agent.json<NodeInventory>("/v1/node/inventory");
    assert.equal(inventory.devices[0]?.server.state, "starting");
    assert.equal(inventory.state, "loading");
  });
});

describe("crashes and hangs", NEEDS_FAKE, () => {
  test("SIGKILL mid-stream: SSE error event, stream ends, next request restarts the server; one that served since starts a fresh backoff series", async () => {
    const agent = await startAgent({
      config: { models: [testModel()] },
      env: { FAKE_LLAMA_TOKEN_MS: "30" },
    });
    const inventory = () => agent.json<NodeInventory>("/v1/node/inventory");
    for (let round = 1; round <= 3; round++) {
      const answer = await postStream(
        `${agent.url}/v1/chat/completions`,
        chat({ stream: true, max_tokens: 200 }),
        {
          onEvent: async (_event, index) => {
            if (index !== 2) return;
            const pid = (await inventory()).devices[0]?.server.pid;
            assert.ok(pid);
            process.kill(pid, "SIGKILL");
          },
        },
      );
      assert.equal(answer.status, 200);
      const last = answer.events.at(-1) as ErrorAnswer;
      assert.equal(last.error.code, "upstream_error", `round ${round}: ${answer.text.slice(-300)}`);
      assert.ok(!answer.events.includes("[DONE]"));
      const failed = await failedDevice(inventory);
      assert.equal(failed.last_error?.signal, "SIGKILL");
      // Round 1 is the first crash; before rounds 2 and 3 the restarted server completed a
      // request, so each kill is the first of a new series, not a crash loop.
      assert.equal(failed.server.consecutive_failures, 1, `round ${round}`);
      const backoffMs = backoffOf(failed);
      assert.ok(backoffMs >= 950 && backoffMs < 2000, `round ${round} backs off ${backoffMs} ms`);

      const next = await postJson(`${agent.url}/v1/chat/completions`, chat());
      assert.equal(next.status, 200, `round ${round}: ${next.text}`);
      assert.equal((await inventory()).devices[0]?.server.restarts, round);
    }
  });

  test("a server that crashes before it ever serves backs off exponentially, and says when it tries next", async () => {
    const agent = await startAgent({
      config: { models: [testModel()] },
      env: { FAKE_LLAMA_CRASH_AFTER: "1" }, // every generation kills the server
    });
    const inventory = () => agent.json<NodeInventory>("/v1/node/inventory");
    for (let round = 1; round <= 3; round++) {
      const answer = await postJson<ErrorAnswer>(`${agent.url}/v1/chat/completions`, chat());
      assertError(answer, 502, "upstream_error");
      const failed = await failedDevice(inventory);
      assert.equal(failed.server.consecutive_failures, round);
      assert.ok(failed.server.next_attempt_at, "the next attempt time is shown");
      const backoffMs = backoffOf(failed);
      assert.ok(
        backoffMs >= 1000 * 2 ** (round - 1) - 50,
        `round ${round} backs off ${backoffMs} ms`,
      );
    }
  });

  test("a crash before any response byte is a 502 upstream_error", async () => {
    const agent = await startAgent({
      config: { models: [testModel()] },
      env: { FAKE_LLAMA_CRASH_AFTER: "1" }, // a non-streamed answer has sent nothing yet
    });
    const answer = await postJson<ErrorAnswer>(`${agent.url}/v1/chat/completions`, chat());
    assertError(answer, 502, "upstream_error");
  });

  test("a server that accepts the request and never answers times out with a clear 502", async () => {
    const agent = await startAgent({
      config: { request_timeout_s: 1, models: [testModel()] },
      env: { FAKE_LLAMA_HANG: "1" },
    });
    const answer = await postJson<ErrorAnswer>(`${agent.url}/v1/chat/completions`, chat());
    assertError(answer, 502, "upstream_error");
    assert.match(answer.body.error.message, /no complete answer within 1 s/);
    // A hung server is not a dead one: the request that timed out is not sent to it again.
    const launched = agent.output.filter((line) => line.includes("processing task"));
    assert.equal(launched.length, 1, launched.join("\n"));
    const device = (await agent.json<NodeInventory>("/v1/node/inventory")).devices[0];
    assert.equal(device?.queue.in_flight, 0, "the device's turn was given back");
  });

  test("a server that dies the moment it starts fails its request with 502 at once, not a restart loop", async () => {
    // As llama-server built for CUDA does on a host without the driver's library.
    const bin = join(await tempDir(), "llama-server");
    await writeFile(
      bin,
      '#!/bin/sh\necho "llama-server: error while loading shared libraries: libcuda.so.1" >&2\nexit 127\n',
      { mode: 0o755 },
    );
    const agent = await startAgent({
      config: { llama_server_bin: bin, llama_server_startup_timeout_s: 5, models: [testModel()] },
    });
    const answer = await postJson<ErrorAnswer>(`${agent.url}/v1/chat/completions`, chat());
    assertError(answer, 502, "upstream_error");
    assert.match(answer.body.error.message, /libcuda/);
    const device = (await agent.json<NodeInventory>("/v1/node/inventory")).devices[0];
    assert.equal(device?.last_error?.exit_code, 127);
    assert.equal(device?.server.consecutive_failures, 1, "one request, one start");
  });

  test("a server that exits while loading shows failed with its exit code and stderr tail", async () => {
    const agent = await startAgent({
      config: { models: [testModel("broken", { path: import.meta.filename })] },
    });
    const answer = await postJson<ErrorAnswer>(
      `${agent.url}/v1/chat/completions`,
      chat({ model: "broken" }),
    );
    assert.equal(answer.status, 502, answer.text);
    const device = (await agent.json<NodeInventory>("/v1/node/inventory")).devices[0];
    assert.equal(device?.server.state, "failed");
    assert.equal(device?.last_error?.exit_code, 1);
    assert.match(device?.last_error?.stderr_tail.join("\n") ?? "", /failed to load model/);
  });
});

type DeviceInventory = NodeInventory["devices"][number];

/** The first device once it shows `failed` (its crash was noticed). */
function failedDevice(inventory: () => Promise<NodeInventory>): Promise<DeviceInventory> {
  return waitUntil(async () => {
    const device = (await inventory()).devices[0];
    return device?.server.state === "failed" ? device : undefined;
  }, "the device to show failed");
}

/** How long the supervisor waits after the crash before it starts the server again. */
function backoffOf(device: DeviceInventory): number {
  return Date.parse(device.server.next_attempt_at ?? "") - Date.parse(device.last_error?.at ?? "");
}

/** Fails if the process dies within `ms`: a check that something does *not* happen. */
async function assertAliveFor(pid: number, ms: number, what: string): Promise<void> {
  const until = Date.now() + ms;
  while (Date.now() < until) {
    assert.ok(await readIdentity(pid), what);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

describe("hung servers (issue 17 #6)", () => {
  const device = async (agent: Awaited<ReturnType<typeof startAgent>>) =>
    (await agent.json<NodeInventory>("/v1/node/inventory")).devices[0]!;

  test(
    "a server still loading at llama_server_load_ceiling_s is killed and fails with backoff",
    NEEDS_FAKE,
    async () => {
      const agent = await startAgent({
        config: {
          llama_server_startup_timeout_s: 1,
          llama_server_load_ceiling_s: 3,
          models: [testModel()],
        },
        env: { FAKE_LLAMA_LOAD_MS: "600000" },
      });
      assertError(
        await postJson(`${agent.url}/v1/chat/completions`, chat()),
        503,
        "model_loading_timeout",
      );
      const pid = (await device(agent)).server.pid;
      const failed = await waitUntil(async () => {
        const now = await device(agent);
        return now.server.state === "failed" ? now : undefined;
      }, "the hung load to be killed");
      assert.match(
        failed.last_error?.message ?? "",
        /was not ready after 3 s of loading and was killed/,
      );
      assert.ok(failed.server.next_attempt_at, "backoff before the next start");
      assert.equal(await readIdentity(pid!), null, "the hung server is gone");
    },
  );

  test("a ready server that stops answering (SIGSTOP) is recycled; requests are served again", async () => {
    const agent = await startAgent({ config: { models: [testModel()] } });
    assert.equal((await postJson(`${agent.url}/v1/chat/completions`, chat())).status, 200);
    const pid = (await device(agent)).server.pid!;
    process.kill(pid, "SIGSTOP");
    const recycled = await waitUntil(
      async () => {
        const now = await device(agent);
        return now.last_error ? now : undefined;
      },
      "the frozen server to be recycled",
      30_000,
    );
    assert.match(recycled.last_error?.message ?? "", /stopped answering its health probe/);
    await waitUntil(async () => (await readIdentity(pid)) === null, "the frozen server to be gone");
    const again = await waitUntil(
      async () => {
        const answer = await postJson(`${agent.url}/v1/chat/completions`, chat());
        return answer.status === 200 ? answer : undefined;
      },
      "a request to be served by a new server",
      30_000,
      500,
    );
    assert.equal(again.headers["x-rolemesh-model"], "stories");
  });

  test("a pid record that cannot be written is logged; the server is still watched and serves", async () => {
    const stateDir = await tempDir();
    // A file where the records' folder should be: every write fails (as on a full disk).
    await writeFile(join(stateDir, "servers"), "not a folder");
    const agent = await startAgent({ stateDir, config: { models: [testModel()] } });
    const answer = await postJson(`${agent.url}/v1/chat/completions`, chat());
    assert.equal(answer.status, 200, answer.text);
    assert.ok(agent.output.some((line) => line.includes("could not record the server's pid")));
  });
});

describe("process hygiene", () => {
  test(
    "agent SIGKILL then restart: the leftover server is stopped, an unrelated pid is not",
    NEEDS_FAKE,
    async () => {
      // The leftover ignores SIGTERM, so the parent-death signal does not end it and the restarted
      // agent must escalate to SIGKILL.
      const first = await startAgent({
        config: { models: [testModel()] },
        env: { FAKE_LLAMA_IGNORE_SIGTERM: "1" },
      });
      assert.equal((await postJson(`${first.url}/v1/chat/completions`, chat())).status, 200);
      const leftover = (await first.json<NodeInventory>("/v1/node/inventory")).devices[0]?.server
        .pid;
      assert.ok(leftover);
      first.signal("SIGKILL");
      await first.exited;
      await assertAliveFor(leftover, 500, "the server outlived its agent and its death signal");

      // A record whose pid now belongs to an unrelated process (start time differs).
      const unrelated = spawn("sleep", ["60"], { detached: true, stdio: "ignore" });
      unrelated.unref();
      await mkdir(join(first.stateDir, "servers"), { recursive: true });
      await writeFile(
        join(first.stateDir, "servers", "gpu_7.json"),
        JSON.stringify({
          pid: unrelated.pid,
          start_time: "1",
          args: "-m x",
          device: "gpu:7",
          model_id: "x",
          port: 1,
        }),
      );

      const started = Date.now();
      const second = await startAgent({
        config: { models: [testModel()] },
        stateDir: first.stateDir,
      });
      assert.equal(await readIdentity(leftover), null, "the leftover server was stopped");
      assert.ok(
        Date.now() - started >= 5000,
        "SIGTERM was ignored, so the agent escalated to SIGKILL",
      );
      assert.match(second.output.join("\n"), /stopping a server left behind by an earlier agent/);
      assert.ok(await readIdentity(unrelated.pid ?? -1), "the unrelated process is alive");
      process.kill(unrelated.pid ?? -1, "SIGKILL");
      assert.equal((await postJson(`${second.url}/v1/chat/completions`, chat())).status, 200);
    },
  );

  test("SIGTERM: admitted requests finish, the agent exits 0, no child remains", async () => {
    const agent = await startAgent({
      config: { models: [testModel()] },
      env: { FAKE_LLAMA_TOKEN_MS: "25" },
    });
    let signalled = false;
    const answer = await postStream(
      `${agent.url}/v1/chat/completions`,
      chat({ stream: true, max_tokens: 40 }),
      {
        onEvent: (_event, index) => {
          if (index === 1 && !signalled) {
            signalled = true;
            agent.signal("SIGTERM");
          }
        },
      },
    );
    assert.ok(signalled);
    assert.equal(answer.events.at(-1), "[DONE]", "the admitted stream completed");
    const { code } = await agent.exited;
    assert.equal(code, 0);
    await waitUntil(
      async () => (await taggedProcesses(agent.tag)).length === 0,
      "every child to be gone",
      10_000,
    );
  });
});
