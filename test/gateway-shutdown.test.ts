/**
 * The gateway's SIGTERM (issue 17 #13): like the agent, it stops accepting, lets admitted
 * requests (streams included) finish within `shutdown_grace_s`, and exits 0 — a restart under
 * systemd or a rolling upgrade cuts no answer short.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { request } from "undici";
import type { StatusResponse } from "../src/protocol/registry.js";
import { postStream } from "./helpers/http-client.js";
import {
  joinArgs,
  startAgent,
  startGateway,
  stopAgent,
  testModel,
  waitUntil,
} from "./helpers/launcher.js";

const chat = { model: "stories", messages: [{ role: "user", content: "Hi" }], stream: true };

test("SIGTERM: a stream through the gateway finishes, new requests are refused, exit 0", async () => {
  const gateway = await startGateway({ config: { heartbeat_interval_s: 1 } });
  const agent = await startAgent({
    config: { node_id: "node-1", models: [testModel("stories")] },
    args: joinArgs(gateway, { heartbeatS: 1 }),
    env: { FAKE_LLAMA_TOKEN_MS: "25" },
  });
  try {
    await waitUntil(
      async () => (await gateway.json<StatusResponse>("/api/status")).peers.length === 1,
      "the agent to register",
    );
    let refused: Promise<number | string> | undefined;
    const answer = await postStream(
      `${gateway.url}/v1/chat/completions`,
      { ...chat, max_tokens: 40 },
      {
        onEvent: (_event, index) => {
          if (index !== 1 || refused) return;
          gateway.signal("SIGTERM");
          // Sent once the gateway logged that it stopped accepting.
          refused = waitUntil(
            () => gateway.output.some((line) => line.includes("no new requests")),
            "the gateway to start draining",
          ).then(() =>
            request(`${gateway.url}/v1/chat/completions`, {
              method: "POST",
              headers: { "content-type": "application/json" },
              body: JSON.stringify({ ...chat, max_tokens: 2 }),
            }).then(
              (late) => late.statusCode,
              (err: NodeJS.ErrnoException) => err.code ?? String(err),
            ),
          );
        },
      },
    );
    assert.ok(refused, "SIGTERM was sent mid-stream");
    assert.equal(answer.events.at(-1), "[DONE]", "the admitted stream completed");
    const late = await refused;
    assert.ok(late === 503 || late === "ECONNREFUSED", `a request after SIGTERM got ${late}`);
    assert.equal((await gateway.exited).code, 0);
  } finally {
    await stopAgent(agent);
    await stopAgent(gateway);
  }
});
