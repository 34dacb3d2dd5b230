/**
 * A web page the user visits must not drive a loopback gateway or agent that trusts local
 * callers in place of credentials (issue 17 #1): it can send `text/plain` or empty POSTs without
 * a CORS preflight (415 now), and with DNS rebinding its requests carry its own host name (403).
 */
import assert from "node:assert/strict";
import { request } from "node:http";
import { before, describe, test } from "node:test";
import type { StatusResponse } from "../src/protocol/registry.js";
import type { AgentProcess } from "./helpers/launcher.js";
import { startAgent, startUp, testModel } from "./helpers/launcher.js";

/** A request as a browser page would send it: any Host, any content type. */
function send(
  base: string,
  method: string,
  path: string,
  options: { host?: string; type?: string; body?: string; token?: string } = {},
): Promise<{ status: number; body: string }> {
  const url = new URL(path, base);
  return new Promise((resolve, reject) => {
    const req = request(
      url,
      {
        method,
        headers: {
          host: options.host ?? url.host,
          ...(options.type ? { "content-type": options.type } : {}),
          ...(options.token ? { authorization: `Bearer ${options.token}` } : {}),
        },
      },
      (res) => {
        let body = "";
        res.on("data", (chunk: Buffer) => (body += chunk.toString()));
        res.on("end", () => resolve({ status: res.statusCode ?? 0, body }));
      },
    );
    req.on("error", reject);
    req.end(options.body);
  });
}

const rogue = JSON.stringify({
  node_id: "rogue",
  hostname: "rogue",
  agent_url: "http://127.0.0.1:9",
  version: "0",
  capabilities: {},
  labels: {},
  started_at: 1,
  sequence: 1,
  snapshot: {
    state: "serving",
    devices: [],
    models: [{ id: "stories", roles: [], loaded_on: [] }],
  },
});

describe("the default rolemesh up (loopback, no credentials)", () => {
  let up: AgentProcess;
  before(async () => {
    up = await startUp({ config: { agent: { models: [testModel()] } } });
  });

  test("a text/plain or untyped POST is refused with 415 and changes nothing", async () => {
    for (const type of ["text/plain", undefined]) {
      const registered = await send(up.url, "POST", "/v1/nodes/register", { type, body: rogue });
      assert.equal(registered.status, 415, registered.body);
      assert.match(registered.body, /"code":"unsupported_media_type"/);
      const key = await send(up.url, "POST", "/api/keys", { type, body: '{"name":"page"}' });
      assert.equal(key.status, 415);
    }
    const status = await up.json<StatusResponse>("/api/status");
    assert.ok(!status.peers.some((peer) => peer.node_id === "rogue"), "no rogue node");
    const keys = await up.json<{ keys: unknown[] }>("/api/keys");
    assert.deepEqual(keys.keys, []);
  });

  test("a request addressed to another host name (DNS rebinding) is refused with 403", async () => {
    for (const path of ["/api/status", "/v1/models", "/api/keys"]) {
      const rebound = await send(up.url, "GET", path, { host: "attacker.example:8080" });
      assert.equal(rebound.status, 403, path);
      assert.match(rebound.body, /"code":"forbidden"/);
      assert.doesNotMatch(rebound.body, /stories/);
    }
    const port = new URL(up.url).port;
    assert.equal(
      (await send(up.url, "GET", "/api/status", { host: `localhost:${port}` })).status,
      200,
    );
  });
});

describe("an agent", () => {
  test("without auth_token: a page cannot stop it (415) nor read it through a rebound name (403)", async () => {
    const agent = await startAgent({ config: { models: [testModel()] } });
    const stop = await send(agent.url, "POST", "/v1/node/stop");
    assert.equal(stop.status, 415);
    const rebound = await send(agent.url, "GET", "/v1/node/inventory", {
      host: "attacker.example",
    });
    assert.equal(rebound.status, 403);
    assert.equal((await send(agent.url, "GET", "/healthz")).status, 200, "still running");
    const drained = await send(agent.url, "POST", "/v1/node/drain", { type: "application/json" });
    assert.equal(drained.status, 200, "a JSON POST from a local client works");
  });

  test("with auth_token the token is the protection: any Host is answered", async () => {
    const token = "agent-token-0123456789";
    const agent = await startAgent({ config: { auth_token: token, models: [testModel()] } });
    const answer = await send(agent.url, "GET", "/v1/node/inventory", {
      host: "gpu-7.lan:8090",
      token,
    });
    assert.equal(answer.status, 200, answer.body);
  });
});
