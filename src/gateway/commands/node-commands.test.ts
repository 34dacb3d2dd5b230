import assert from "node:assert/strict";
import { test } from "node:test";
import { createLogger } from "../../core/logger.js";
import { playedNode } from "../../../test/helpers/played-node.js";
import { NodeRegistry } from "../registry/node-registry.js";
import type { CommandRequest, CommandTransport } from "./command-transport.js";
import { NodeCommands, REMEMBERED_OPERATIONS } from "./node-commands.js";

/** A node that starts an operation per install and answers any operation's status. */
class RecordingTransport implements CommandTransport {
  readonly calls: string[] = [];
  #next = 0;

  call<T>(_node: unknown, { method, path }: CommandRequest) {
    this.calls.push(`${method} ${path}`);
    const body = method === "POST" ? { op_id: `op-${this.#next++}` } : { state: "running" };
    return Promise.resolve({ status: method === "POST" ? 202 : 200, body: body as T });
  }

  followOperation() {
    return Promise.resolve();
  }
}

test("the operation-to-node map is bounded; a forgotten operation is found by asking", async () => {
  const registry = new NodeRegistry({ leaseMs: 60_000 });
  registry.register(playedNode("a", 1));
  const transport = new RecordingTransport();
  const commands = new NodeCommands(registry, transport, createLogger("silent"));
  const install = { model_id: "m", url: "http://127.0.0.1:9/m.gguf" };
  for (let i = 0; i <= REMEMBERED_OPERATIONS; i++) {
    await commands.send("a", "model.install", install, { by: "test" });
  }
  const before = transport.calls.length;
  await commands.operation(`op-${REMEMBERED_OPERATIONS}`);
  assert.equal(transport.calls.length - before, 1, "a remembered operation: one call to its node");
  await commands.operation("op-0");
  assert.equal(transport.calls.length - before, 3, "a forgotten one: asked of the nodes first");
});
