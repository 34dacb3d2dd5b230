/**
 * The gateway's console and admin surface: console files, node commands (SPEC §10: load,
 * unload, drain) sent to a real agent, wakeable entries (SPEC §11), and state changes that
 * reach the gateway without waiting for the next heartbeat.
 */
import assert from "node:assert/strict";
import { basename } from "node:path";
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import type { StatusResponse } from "../src/protocol/registry.js";
import type { NodeInventory } from "../src/protocol/inventory.js";
import { assertError, postJson } from "./helpers/http-client.js";
import type { AgentProcess } from "./helpers/launcher.js";
import {
  joinArgs,
  startAgent,
  startGateway,
  stopAgent,
  tempDir,
  testModel,
  waitUntil,
} from "./helpers/launcher.js";

const ADMIN_KEY = "admin-key-for-tests-0123456789";
const CLIENT_KEY = "client-key-for-tests-0123456789";
/** Long on purpose: state changes must reach the gateway long before the next heartbeat. */
const HEARTBEAT_S = 30;
const admin = { authorization: `Bearer ${ADMIN_KEY}`, "content-type": "application/json" };
const chat = { model: "stories", messages: [{ role: "user", content: "Hi" }], max_tokens: 2 };

describe("gateway admin API and console", () => {
  let gateway: AgentProcess;
  let gatewayDir: string;
  let agent: AgentProcess;
  const gatewayConfig = {
    admin_key: ADMIN_KEY,
    heartbeat_interval_s: HEARTBEAT_S,
    api_keys: [{ name: "app", key: CLIENT_KEY, models: ["other"] }],
    wakeable: [{ id: "from-config", provider: "aws", vram_mb: 81920, node_id: "late-node" }],
  };

  const status = async () =>
    (await (await fetch(`${gateway.url}/api/status`, { headers: admin })).json()) as StatusResponse;
  const command = (name: string, body: unknown = {}, headers: Record<string, string> = admin) =>
    postJson(`${gateway.url}/api/nodes/node-1/commands/${name}`, body, { headers });

  before(async () => {
    gatewayDir = await tempDir();
    gateway = await startGateway({ config: gatewayConfig, stateDir: gatewayDir });
    agent = await startAgent({
      config: { node_id: "node-1", models: [testModel("stories")] },
      args: joinArgs(gateway, { heartbeatS: HEARTBEAT_S }),
      env: { FAKE_LLAMA_LOAD_MS: "300" },
    });
    await waitUntil(async () => (await status()).peers.length === 1, "the agent to register");
  });

  after(async () => {
    await stopAgent(agent);
    await stopAgent(gateway);
  });

  test("the console is served at / with a strict content security policy", async () => {
    const page = await fetch(`${gateway.url}/`);
    assert.equal(page.status, 200);
    assert.match(page.headers.get("content-type") ?? "", /^text\/html/);
    assert.match(page.headers.get("content-security-policy") ?? "", /script-src 'self'/);
    const html = await page.text();
    assert.match(html, /\/console\/app\.js/);
    assert.doesNotMatch(html, /https?:\/\//, "no external reference: works offline");

    const script = await fetch(`${gateway.url}/console/app.js`);
    assert.equal(script.status, 200);
    assert.match(script.headers.get("content-type") ?? "", /javascript/);
    const etag = script.headers.get("etag") ?? "";
    await script.arrayBuffer();
    const again = await fetch(`${gateway.url}/console/app.js`, {
      headers: { "if-none-match": etag },
    });
    assert.equal(again.status, 304);

    for (const path of ["/console/..%2Fpackage.json", "/console/missing.js", "/console/"]) {
      const answer = await fetch(`${gateway.url}${path}`);
      assert.equal(answer.status, 404, path);
      await answer.arrayBuffer();
    }
  });

  test("every admin route answers 401 without the admin key, and a client key is not enough", async () => {
    const routes: [string, string][] = [
      ["POST", "/api/nodes/node-1/commands/model.load"],
      ["GET", "/api/wakeable"],
      ["POST", "/api/wakeable"],
      ["DELETE", "/api/wakeable/from-config"],
      ["GET", "/api/nodes"],
    ];
    for (const [method, path] of routes) {
      const credentials: Record<string, string>[] = [{}, { authorization: `Bearer ${CLIENT_KEY}` }];
      for (const headers of credentials) {
        const answer = await fetch(`${gateway.url}${path}`, { method, headers });
        assert.equal(answer.status, 401, `${method} ${path}`);
        await answer.arrayBuffer();
      }
    }
  });

  test("load reaches the gateway at once, not at the next heartbeat", async () => {
    const loaded = await command("model.load", { model_id: "stories" });
    assert.equal(loaded.status, 200, loaded.text);
    const result = (loaded.body as { result: { server: { state: string } } }).result;
    assert.equal(result.server.state, "ready");
    // The heartbeat interval is 30 s: only the agent's nudge on a state change explains this.
    await waitUntil(
      async () => (await status()).peers[0]?.state === "serving",
      "the gateway to see the node serving",
      5000,
    );
  });

  test("a client key reads the fleet without server output or model paths (issue 17 #12)", async () => {
    const full = (await status()).peers[0]!;
    const path = full.models[0]!.path;
    assert.ok(full.devices[0]!.log_tail.length > 0, "the admin reads the server's output");
    assert.equal(path, String(testModel("stories").path));
    const asClient = { authorization: `Bearer ${CLIENT_KEY}` };
    const read = (await (
      await fetch(`${gateway.url}/api/status`, { headers: asClient })
    ).json()) as StatusResponse;
    assert.deepEqual(read.peers[0]!.devices[0]!.log_tail, []);
    assert.equal(read.peers[0]!.models[0]!.path, basename(path));

    const controller = new AbortController();
    const events = await fetch(`${gateway.url}/api/events`, {
      headers: asClient,
      signal: controller.signal,
    });
    const reader = events.body!.getReader();
    let text = "";
    while (!text.includes("\n\n")) text += new TextDecoder().decode((await reader.read()).value);
    controller.abort();
    const first = JSON.parse(text.slice(6, text.indexOf("\n\n"))) as { status: StatusResponse };
    assert.deepEqual(first.status.peers[0]!.devices[0]!.log_tail, []);
    assert.ok(!text.includes(path), "no model path in the client's event stream");
  });

  test("drain refuses new requests until resume; the gateway shows it", async () => {
    const drained = await command("node.drain");
    assert.equal(drained.status, 200, drained.text);
    assert.equal((drained.body as { result: { draining: boolean } }).result.draining, true);
    await waitUntil(async () => (await status()).peers[0]?.draining, "draining in status", 5000);
    assertError(await postJson(`${agent.url}/v1/chat/completions`, chat), 503, "shutting_down");
    assert.equal((await command("node.resume")).status, 200);
    await waitUntil(async () => !(await status()).peers[0]?.draining, "resumed in status", 5000);
    assert.equal((await postJson(`${agent.url}/v1/chat/completions`, chat)).status, 200);
  });

  test("the admin key also works as a client key (the console's playground)", async () => {
    const answer = await postJson(`${gateway.url}/v1/chat/completions`, chat, { headers: admin });
    assert.equal(answer.status, 200, answer.text);
    assertError(
      await postJson(`${gateway.url}/v1/chat/completions`, chat, {
        headers: { authorization: `Bearer ${CLIENT_KEY}` },
      }),
      403,
      "forbidden",
    );
  });

  test("unload stops the server; unknown commands and nodes are refused", async () => {
    const unloaded = await command("model.unload", { model_id: "stories" });
    assert.equal(unloaded.status, 200, unloaded.text);
    const inventory = await agent.json<NodeInventory>("/v1/node/inventory");
    assert.equal(inventory.devices[0]?.server.state, "stopped");
    await waitUntil(async () => (await status()).peers[0]?.state === "standby", "standby", 5000);

    assertError(await command("model.explode"), 400, "invalid_request");
    assertError(await command("model.load", {}), 400, "invalid_request");
    assertError(await command("model.load", { model_id: "nope" }), 404, "model_not_found");
    assertError(
      await postJson(`${gateway.url}/api/nodes/ghost/commands/node.drain`, {}, { headers: admin }),
      404,
      "unknown_node",
    );
  });

  test("backend commands: list, install (idempotent, as an operation), stop, upgrade, delete", async () => {
    const listed = await command("backend.list");
    assert.equal(listed.status, 200, listed.text);
    const backends = (listed.body as { result: { backends: { device: string; state: string }[] } })
      .result.backends;
    assert.deepEqual(
      backends.map((b) => [b.device, b.state]),
      [["cpu:0", "stopped"]],
    );

    const started = await command("backend.install", { model_id: "stories" });
    assert.equal(started.status, 202, started.text);
    const opId = (started.body as { op_id: string }).op_id;
    const done = await waitUntil(async () => {
      const op = await (
        await fetch(`${gateway.url}/api/operations/${opId}`, { headers: admin })
      ).json();
      return (op as { state: string }).state === "running"
        ? undefined
        : (op as { state: string; result: { address: string } });
    }, "backend.install to finish");
    assert.equal(done.state, "succeeded");
    assert.match(done.result.address, /^http:\/\/127\.0\.0\.1:\d+$/);

    const again = await command("backend.install", { model_id: "stories" });
    assert.equal(again.status, 200, "a running server answers at once");
    assert.equal(
      (again.body as { result: { address: string } }).result.address,
      done.result.address,
    );

    const stopping = await command("backend.stop", {});
    assert.equal(stopping.status, 202, stopping.text);
    assert.deepEqual((stopping.body as { stopping: string[] }).stopping, ["cpu:0"]);
    await waitUntil(
      async () =>
        (await agent.json<NodeInventory>("/v1/node/inventory")).devices[0]?.server.state ===
        "stopped",
      "the server to stop",
    );
    assert.equal((await command("backend.upgrade")).status, 200);
    const deleted = await command("backend.delete");
    assert.deepEqual((deleted.body as { result: unknown }).result, {
      stopped: [],
      removed_files: [],
    });
  });

  test("wakeable entries: from the config, added, validated, kept across restarts", async () => {
    const first = await status();
    assert.deepEqual(
      first.wakeable.map((entry) => [entry.id, entry.state, entry.wake_action]),
      [["from-config", "sleeping", null]],
    );
    const added = await postJson(
      `${gateway.url}/api/wakeable`,
      {
        id: "desk-box",
        provider: "wol",
        models: ["stories"],
        node_id: "node-1",
        wake: { webhook: "https://example.invalid/wake?token=secret" },
      },
      { headers: admin },
    );
    assert.equal(added.status, 201, added.text);
    const entry = added.body as { state: string; wake_action: string };
    // Its node is registered, so it shows as awake; the webhook itself is never shown.
    assert.equal(entry.state, "awake");
    assert.equal(entry.wake_action, "webhook");
    assert.doesNotMatch(JSON.stringify(await status()), /secret/);

    assertError(
      await postJson(`${gateway.url}/api/wakeable`, { id: "../x" }, { headers: admin }),
      400,
      "invalid_request",
    );
    const fromConfig = await fetch(`${gateway.url}/api/wakeable/from-config`, {
      method: "DELETE",
      headers: admin,
    });
    assert.equal(fromConfig.status, 400);
    await fromConfig.arrayBuffer();

    const stored = JSON.parse(await readFile(join(gatewayDir, "wakeable.json"), "utf8"));
    assert.deepEqual(
      stored.map((item: { id: string }) => item.id),
      ["desk-box"],
    );
    await stopAgent(gateway);
    gateway = await startGateway({ config: gatewayConfig, stateDir: gatewayDir });
    assert.deepEqual((await status()).wakeable.map((item) => item.id).sort(), [
      "desk-box",
      "from-config",
    ]);
  });
});
