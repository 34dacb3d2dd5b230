import assert from "node:assert/strict";
import { once } from "node:events";
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { after, test } from "node:test";
import { RoleMeshError } from "../../core/errors.js";
import { playedNode } from "../../../test/helpers/played-node.js";
import { NodeRegistry } from "../registry/node-registry.js";
import { HttpCommandTransport, REMEMBERED_OPERATIONS } from "./command-transport.js";

/**
 * A node API that starts an operation per install and answers the status of its own ones (404
 * for others), in the agent's shapes; it counts the requests it gets.
 */
async function playedAgent() {
  const started = new Set<string>();
  const agent = { url: "", requests: 0 };
  const server = createServer((req, res) => {
    agent.requests++;
    res.setHeader("content-type", "application/json");
    if (req.method === "POST") {
      res.statusCode = 202;
      const opId = `op-${started.size}`;
      started.add(opId);
      res.end(JSON.stringify({ op_id: opId, joined: false }));
    } else if (started.has(req.url!.split("/").pop()!)) {
      res.end(JSON.stringify({ op_id: req.url!.split("/").pop(), state: "running" }));
    } else {
      res.statusCode = 404;
      res.end(
        JSON.stringify({
          error: {
            message: "no operation",
            type: "not_found_error",
            param: null,
            code: "not_found",
          },
        }),
      );
    }
  });
  server.listen(0, "127.0.0.1");
  await once(server, "listening");
  after(() => server.close());
  agent.url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return agent;
}

test("HTTP commands find operations: remembered ones at once, forgotten ones by asking the nodes", async () => {
  const registry = new NodeRegistry({ leaseMs: 60_000 });
  const owner = await playedAgent();
  const other = await playedAgent();
  registry.register(playedNode("other", 1, { agent_url: other.url }));
  registry.register(playedNode("owner", 1, { agent_url: owner.url }));
  const transport = new HttpCommandTransport(registry);
  const install = {
    command: "model.install",
    method: "POST",
    path: "/v1/node/models/install",
  } as const;
  for (let i = 0; i <= REMEMBERED_OPERATIONS; i++)
    await transport.call(registry.get("owner")!, install);
  const calls = () => owner.requests + other.requests;
  let before = calls();
  await transport.operation(`op-${REMEMBERED_OPERATIONS}`, "status");
  assert.equal(calls() - before, 1, "a remembered operation: one call to its node");

  before = calls();
  const { body } = await transport.operation("op-0", "status");
  assert.equal(body.op_id, "op-0");
  assert.equal(other.requests, 1, "the node without it was asked");
  assert.equal(calls() - before, 3, "a forgotten one: asked of the nodes, then of its own");

  await assert.rejects(
    transport.operation("op-unknown", "cancel"),
    (err: unknown) => err instanceof RoleMeshError && err.code === "not_found",
  );
});
