/**
 * What a gateway holds is bounded (issue 17 #9) and shown at `/metrics` (#14), with a real
 * agent and nodes the test plays: live nodes (`max_nodes`), each node's message rate, the size
 * and shape of descriptors, `/api/events` streams (`max_event_clients`).
 */
import assert from "node:assert/strict";
import { copyFile, mkdir } from "node:fs/promises";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import parsePrometheusTextFormat from "parse-prometheus-text-format";
import type { MetricFamily } from "parse-prometheus-text-format";
import type { NodeInventory } from "../src/protocol/inventory.js";
import { LOG_LINE_MAX_CHARS } from "../src/protocol/inventory.js";
import type { StatusResponse } from "../src/protocol/registry.js";
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
import { playedNode } from "./helpers/played-node.js";

const JOIN_TOKEN = "join-token-for-limits-0123";
const ADMIN_KEY = "admin-key-for-limits-0123456";
const CLIENT_KEY = "client-key-for-limits-0123456";
const joinHeaders = { authorization: `Bearer ${JOIN_TOKEN}` };
const adminHeaders = { authorization: `Bearer ${ADMIN_KEY}` };
const clientHeaders = { authorization: `Bearer ${CLIENT_KEY}` };
const NODE_ID = "long-lines";
const chat = (model: string) => ({
  model,
  messages: [{ role: "user", content: "Once upon a time" }],
  max_tokens: 2,
});

/** The value of the first sample of `name` whose labels include `labels`. */
function sample(families: MetricFamily[], name: string, labels: Record<string, string>): number {
  const family = families.find((candidate) => candidate.name === name);
  const found = family?.metrics.find((metric) =>
    Object.entries(labels).every(([key, value]) => metric.labels?.[key] === value),
  );
  return Number(found?.value ?? Number.NaN);
}

describe("a gateway's limits, with an agent and played nodes", () => {
  let gateway: AgentProcess;
  let agent: AgentProcess;
  const nodesUrl = (path: string) => `${gateway.url}/v1/nodes/${path}`;
  const peer = async (nodeId: string) =>
    (await gateway.json<StatusResponse>("/api/status", { headers: adminHeaders })).peers.find(
      (candidate) => candidate.node_id === nodeId,
    );

  before(async () => {
    gateway = await startGateway({
      config: {
        join_token: JOIN_TOKEN,
        admin_key: ADMIN_KEY,
        api_keys: [{ name: "team", key: CLIENT_KEY }],
        heartbeat_interval_s: 1,
        // A busy machine that delays the agent's heartbeats does not take it out.
        lease_s: 30,
        heartbeat_min_interval_s: 0.5,
        max_nodes: 2,
        max_event_clients: 2,
      },
    });
    // A model under a path longer than a log line may be: the server prints it as it loads.
    const deep = join(await tempDir(), "d".repeat(200), "e".repeat(200));
    await mkdir(deep, { recursive: true });
    const path = join(deep, `${"m".repeat(100)}.gguf`);
    await copyFile(String(testModel().path), path);
    agent = await startAgent({
      config: { node_id: NODE_ID, models: [testModel("stories", { path })] },
      args: joinArgs(gateway, { joinToken: JOIN_TOKEN, heartbeatS: 1 }),
    });
    await waitUntil(async () => (await peer(NODE_ID)) !== undefined, "the agent to register");
  });

  after(async () => {
    await stopAgent(agent);
  });

  test("a server's overlong output lines travel cut, so its node's heartbeats still count", async () => {
    const answer = await postJson(`${gateway.url}/v1/chat/completions`, chat("stories"), {
      headers: clientHeaders,
    });
    assert.equal(answer.status, 200, answer.text);
    // The state after the load reaches the gateway only in heartbeats carrying the long line.
    await waitUntil(async () => (await peer(NODE_ID))?.state === "serving", "the serving state");
    assert.ok(!agent.output.some((line) => line.includes("heartbeat failed")));
    const inventory = await agent.json<NodeInventory>("/v1/node/inventory");
    const tail = inventory.devices.flatMap((device) => device.log_tail);
    const cut = tail.filter((line) => line.endsWith("…"));
    assert.ok(cut.length > 0, "the server printed a line longer than a log line may be");
    assert.ok(tail.every((line) => line.length <= LOG_LINE_MAX_CHARS));
  });

  test("beyond max_nodes a registration is refused with 409 and a log line, until a node leaves", async () => {
    const first = playedNode("played-1", 1000);
    const second = playedNode("played-2", 1000);
    assert.equal(
      (await postJson(nodesUrl("register"), first, { headers: joinHeaders })).status,
      200,
    );
    const refused = await postJson(nodesUrl("register"), second, { headers: joinHeaders });
    assertError(refused, 409, "conflict");
    assert.match(refused.text, /max_nodes \(2\)/);
    assert.equal(await peer("played-2"), undefined);
    assert.ok(gateway.output.some((line) => line.includes("registry full")));

    await postJson(nodesUrl("deregister"), { ...first, sequence: 2 }, { headers: joinHeaders });
    assert.equal(
      (await postJson(nodesUrl("register"), second, { headers: joinHeaders })).status,
      200,
    );
    await postJson(nodesUrl("deregister"), { ...second, sequence: 2 }, { headers: joinHeaders });
  });

  test("a node's messages faster than its budget get 429 with Retry-After; the node stays", async () => {
    const hasty = playedNode("hasty", 1000);
    assert.equal(
      (await postJson(nodesUrl("register"), hasty, { headers: joinHeaders })).status,
      200,
    );
    let sequence = 2;
    let answer = await postJson(
      nodesUrl("heartbeat"),
      { ...hasty, sequence },
      { headers: joinHeaders },
    );
    // Two a second are allowed after a burst of ten: a tight loop runs out long before 100.
    while (answer.status === 200 && sequence < 100) {
      sequence++;
      answer = await postJson(
        nodesUrl("heartbeat"),
        { ...hasty, sequence },
        { headers: joinHeaders },
      );
    }
    assertError(answer, 429, "rate_limited");
    assert.ok(Number(answer.headers["retry-after"]) >= 1, "Retry-After says when");
    assert.ok(await peer("hasty"), "refused messages, not a removed node");
    await postJson(nodesUrl("deregister"), { ...hasty, sequence: 101 }, { headers: joinHeaders });
  });

  test("descriptors: unknown fields are dropped, long fields refused, big bodies 413", async () => {
    const padded = playedNode("padded", 1000);
    const smuggling = {
      ...padded,
      smuggled: "s".repeat(1000),
      capabilities: { ...padded.capabilities, smuggled: "s".repeat(1000) },
    };
    assert.equal(
      (await postJson(nodesUrl("register"), smuggling, { headers: joinHeaders })).status,
      200,
    );
    const held = await peer("padded");
    assert.ok(held);
    assert.equal(JSON.stringify(held).includes("smuggled"), false);

    const longLabel = { ...padded, sequence: 2, labels: { story: "x".repeat(2000) } };
    const refused = await postJson(nodesUrl("register"), longLabel, { headers: joinHeaders });
    assertError(refused, 400, "invalid_request");
    assert.match(refused.text, /"param":"labels\.story"/);

    const big = { ...padded, sequence: 3, smuggled: "s".repeat(300 * 1024) };
    assertError(
      await postJson(nodesUrl("register"), big, { headers: joinHeaders }),
      413,
      "request_too_large",
    );
    await postJson(nodesUrl("deregister"), { ...padded, sequence: 4 }, { headers: joinHeaders });
  });

  test("beyond max_event_clients an /api/events stream gets 503 with Retry-After", async () => {
    const open = async () => {
      const controller = new AbortController();
      const res = await fetch(`${gateway.url}/api/events`, {
        headers: adminHeaders,
        signal: controller.signal,
      });
      return { res, close: () => controller.abort() };
    };
    const streams = [await open(), await open()];
    for (const { res } of streams) assert.equal(res.status, 200);
    const third = await open();
    assert.equal(third.res.status, 503);
    assert.ok(Number(third.res.headers.get("retry-after")) >= 1);
    const body = (await third.res.json()) as { error: { code: string } };
    assert.equal(body.error.code, "queue_full");

    streams[0]!.close();
    const again = await waitUntil(async () => {
      const attempt = await open();
      if (attempt.res.status === 200) return attempt;
      await attempt.res.body?.cancel();
      return undefined;
    }, "a place to free once a stream closed");
    again.close();
    streams[1]!.close();
  });

  test("/metrics, for the admin key only: routing, registry, per-node and per-key figures", async () => {
    assert.equal(
      (
        await postJson(`${gateway.url}/v1/chat/completions`, chat("made-up-model"), {
          headers: clientHeaders,
        })
      ).status,
      404,
    );
    for (const headers of [{}, clientHeaders, joinHeaders]) {
      assert.equal((await fetch(`${gateway.url}/metrics`, { headers })).status, 401);
    }
    const res = await fetch(`${gateway.url}/metrics`, { headers: adminHeaders });
    assert.equal(res.status, 200);
    assert.match(res.headers.get("content-type") ?? "", /^text\/plain; version=0\.0\.4/);
    const text = await res.text();
    assert.ok(!text.includes(CLIENT_KEY) && !text.includes(ADMIN_KEY), "no secret");
    assert.ok(!text.includes("made-up-model"), "names no node offers make no series");
    const families = parsePrometheusTextFormat(text);
    const at = (name: string, labels: Record<string, string>) => sample(families, name, labels);

    const endpoint = "/v1/chat/completions";
    assert.equal(at("rolemesh_nodes", { state: "serving" }), 1);
    assert.equal(at("rolemesh_gateway_max_nodes", {}), 2);
    assert.equal(
      at("rolemesh_gateway_requests_total", { endpoint, model: "stories", outcome: "ok" }),
      1,
    );
    assert.equal(
      at("rolemesh_gateway_requests_total", { model: "", outcome: "model_not_found" }),
      1,
    );
    // The parser drops a histogram's labels: its count line is read as text.
    assert.match(
      text,
      /rolemesh_gateway_request_duration_seconds_count\{[^}]*model="stories"\} 1\n/,
    );
    assert.equal(at("rolemesh_gateway_key_requests_total", { key: "team", outcome: "ok" }), 1);
    assert.equal(at("rolemesh_gateway_node_requests_total", { node: NODE_ID, outcome: "ok" }), 1);
    assert.equal(at("rolemesh_gateway_node_in_flight_requests", { node: NODE_ID }), 0);
    const messages = (message: string, outcome: string) =>
      at("rolemesh_gateway_registry_messages_total", { message, outcome });
    assert.ok(messages("heartbeat", "accepted") >= 1);
    assert.equal(messages("register", "registry_full"), 1);
    assert.equal(messages("heartbeat", "rate_limited"), 1);
    assert.equal(messages("register", "invalid_request"), 1);
    assert.equal(messages("register", "request_too_large"), 1);
    assert.ok(at("rolemesh_gateway_node_removals_total", { reason: "deregistered" }) >= 3);
    assert.ok(at("rolemesh_gateway_event_clients_refused_total", {}) >= 1);
  });
});
