/**
 * Auth on every route (SPEC §2.2, §7): the audit of test/helpers/auth-audit.ts, which the chaos
 * scenario "auth enumeration" runs too, against an agent with an auth_token registered with a
 * gateway that has a join token, an admin key and a client key.
 */
import assert from "node:assert/strict";
import { once } from "node:events";
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { after, before, describe, test } from "node:test";
import {
  agentRouteList,
  auditFleet,
  auditLogs,
  auditRoutes,
  auditSetup,
  fillPath,
  gatewayRouteList,
} from "./helpers/auth-audit.js";
import type { FleetAudit, Known } from "./helpers/auth-audit.js";
import type { AgentProcess } from "./helpers/launcher.js";
import { startAgent, startGateway, stopAgent, testModel } from "./helpers/launcher.js";

const names = (routes: { method: string; path: string }[]) =>
  routes.map((route) => `${route.method} ${route.path}`);

describe("auth on every route of the agent and the gateway", () => {
  const setup = auditSetup(testModel());
  let gateway: AgentProcess;
  let agent: AgentProcess;
  let audit: FleetAudit;

  before(async () => {
    gateway = await startGateway({ config: setup.gatewayConfig });
    agent = await startAgent({ config: setup.agentConfig, args: setup.agentArgs(gateway.url) });
    audit = await auditFleet(setup, agent.url, gateway.url);
  });

  after(async () => {
    // Both are stopped by the last test already; this covers a run that failed before it.
    for (const started of [agent, gateway].filter(Boolean)) await stopAgent(started);
  });

  test("the route tables list every route, admin and console ones included", async () => {
    const agentRoutes = names(agentRouteList());
    for (const route of ["GET /v1/node/inventory", "POST /v1/node/stop", "GET /metrics"])
      assert.ok(agentRoutes.includes(route), route);
    const gatewayRoutes = names(await gatewayRouteList());
    for (const route of ["GET /api/status", "POST /v1/nodes/register", "GET /console/:file"])
      assert.ok(gatewayRoutes.includes(route), route);
  });

  test("the right credentials are answered, and no answer shows a secret", () => {
    assert.deepEqual(audit.authorized.failures, []);
  });

  test("every agent route but /healthz answers 401 invalid_api_key and nothing more", () => {
    assert.deepEqual(audit.agent.findings.failures, []);
    assert.equal(audit.agent.public, 1);
    assert.equal(audit.agent.unauthorized, audit.agent.routes - 1);
  });

  test("every gateway route but /healthz and the console answers 401 and nothing more", () => {
    assert.deepEqual(audit.gateway.findings.failures, []);
    assert.equal(audit.gateway.public, 3);
    assert.equal(audit.gateway.unauthorized, audit.gateway.routes - 3);
  });

  test("no secret reaches either process's log, shutdown included", async () => {
    await stopAgent(agent);
    await stopAgent(gateway);
    assert.ok(agent.output.some((line) => line.includes("deregistered from the gateway")));
    const logs = auditLogs(setup.secrets, { agent: agent.output, gateway: gateway.output });
    assert.deepEqual(logs.failures, []);
  });
});

describe("the auth audit itself", () => {
  const known: Known = {
    secrets: {
      authToken: "agent-t",
      joinToken: "join-t",
      adminKey: "admin-k",
      clientKey: "client-k",
    },
    params: { ":op_id": "op-1" },
    data: [["node id", "node-secret-id"]],
  };

  test("reports routes that answer without credentials or name fleet data", async () => {
    const refused = {
      error: { message: "no", type: "authentication_error", code: "invalid_api_key", param: null },
    };
    const bodies: Record<string, [number, unknown]> = {
      "/open": [200, { node_id: "node-secret-id" }],
      "/chatty/op-1": [401, { ...refused, node: "node-secret-id" }],
      "/closed/op-1": [401, refused],
      "/healthz": [200, { status: "ok" }],
    };
    const server = createServer((req, res) => {
      const [status, body] = bodies[req.url ?? ""] ?? [404, {}];
      res.writeHead(status, { "content-type": "application/json" }).end(JSON.stringify(body));
    });
    server.listen(0, "127.0.0.1");
    await once(server, "listening");
    try {
      const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
      const result = await auditRoutes(
        url,
        [
          { method: "GET", path: "/open", access: "token" },
          { method: "GET", path: "/chatty/:op_id", access: "token" },
          { method: "GET", path: "/closed/:op_id", access: "token" },
          { method: "GET", path: "/healthz", access: "public" },
        ],
        known,
      );
      assert.equal(result.unauthorized, 1, result.findings.failures.join("\n"));
      assert.equal(result.public, 1);
      // Five probes a route: none, a made-up token, and the three secrets a token route refuses.
      // /open answers data to each; /chatty names the node id, beside the error, to each.
      assert.equal(result.findings.leaks, 10, result.findings.failures.join("\n"));
      assert.equal(result.findings.failures.length, 15, result.findings.failures.join("\n"));
      assert.ok(result.findings.failures.every((failure) => /\/(open|chatty)/.test(failure)));
    } finally {
      server.close();
    }
  });

  test("a path parameter with no plausible value fails instead of being guessed", () => {
    assert.equal(fillPath("/closed/:op_id", known.params), "/closed/op-1");
    assert.throws(() => fillPath("/things/:thing", known.params), /no value for :thing/);
  });
});
