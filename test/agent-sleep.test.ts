/**
 * The agent's side of wakeable capacity (SPEC §11, issue 20) with real processes: `node.sleep`
 * runs the node's `sleep_command` (a script standing in for `systemctl suspend`) after leaving
 * the gateway, and the node registers again afterwards; `node.wol` sends a magic packet, here
 * to a UDP listener on 127.0.0.1 only.
 */
import assert from "node:assert/strict";
import { createSocket } from "node:dgram";
import { once } from "node:events";
import { chmod, readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { after, test } from "node:test";
import type { StatusResponse } from "../src/protocol/registry.js";
import { assertError, postJson, postStream } from "./helpers/http-client.js";
import type { JsonAnswer } from "./helpers/http-client.js";
import type { AgentProcess } from "./helpers/launcher.js";
import {
  joinArgs,
  LONG_STREAM,
  startAgent,
  startGateway,
  stopAgent,
  tempDir,
  testModel,
  waitUntil,
} from "./helpers/launcher.js";

/** Long enough that a poll of the gateway sees the node gone before it registers again. */
const HEARTBEAT_S = 2;
const MAC = "02:00:5e:10:00:01";

const started: AgentProcess[] = [];
after(async () => {
  for (const each of started.reverse()) await stopAgent(each);
});

/** A started gateway or agent, stopped after the tests. */
async function launched(launching: Promise<AgentProcess>): Promise<AgentProcess> {
  const launchedProcess = await launching;
  started.push(launchedProcess);
  return launchedProcess;
}

const listed = async (gateway: AgentProcess, nodeId: string) =>
  (await gateway.json<StatusResponse>("/api/status")).peers.some((peer) => peer.node_id === nodeId);

async function lines(file: string): Promise<string[]> {
  const text = await readFile(file, "utf8").catch(() => "");
  return text.split("\n").filter(Boolean);
}

test("node.sleep: refused while a request runs; then the node leaves the gateway, runs sleep_command, and registers again", async () => {
  const dir = await tempDir();
  const marker = join(dir, "slept");
  const suspend = join(dir, "suspend");
  // Stands in for `systemctl suspend`: says it ran, and as which node, then exits 0.
  await writeFile(suspend, `#!/bin/sh\necho "$ROLEMESH_NODE_ID" >> '${marker}'\n`);
  await chmod(suspend, 0o755);
  const gateway = await launched(startGateway({ config: { heartbeat_interval_s: HEARTBEAT_S } }));
  const agent = await launched(
    startAgent({
      config: { node_id: "napper", models: [testModel()], sleep_command: [suspend] },
      args: joinArgs(gateway, { heartbeatS: HEARTBEAT_S }),
    }),
  );
  await waitUntil(() => listed(gateway, "napper"), "the node to register");

  let refused: JsonAnswer | undefined;
  const streamed = await postStream(
    `${agent.url}/v1/chat/completions`,
    {
      model: "stories",
      messages: [{ role: "user", content: "Once upon a time" }],
      stream: true,
      ...LONG_STREAM,
    },
    {
      onEvent: async (_event, index) => {
        if (index === 0) refused = await postJson(`${agent.url}/v1/node/sleep`, {});
      },
    },
  );
  assert.equal(streamed.events.at(-1), "[DONE]", "the request in flight was not disturbed");
  assertError(refused!, 409, "conflict");
  assert.match(refused!.text, /in flight/);
  assert.deepEqual(await lines(marker), [], "a busy node runs no sleep_command");

  const accepted = await postJson(`${agent.url}/v1/node/sleep`, {});
  assert.equal(accepted.status, 202, accepted.text);
  assert.deepEqual(accepted.body, { node_id: "napper", sleeping: true });
  await waitUntil(async () => !(await listed(gateway, "napper")), "the node to deregister");
  await waitUntil(async () => (await lines(marker)).length === 1, "the sleep_command to run");
  assert.deepEqual(await lines(marker), ["napper"]);
  // The script returned as a resumed machine would: the node is back a heartbeat later.
  await waitUntil(() => listed(gateway, "napper"), "the node to register again");
  assert.deepEqual(await lines(marker), ["napper"], "the command ran once");
});

test("node.sleep without sleep_command is 400; node.wol sends the magic packet", async () => {
  const agent = await launched(startAgent({ config: { models: [testModel()] } }));
  const refused = await postJson(`${agent.url}/v1/node/sleep`, {});
  assertError(refused, 400, "invalid_request");
  assert.match(refused.text, /sleep_command/);

  const listener = createSocket("udp4");
  listener.bind(0, "127.0.0.1");
  await once(listener, "listening");
  try {
    const received = once(listener, "message") as Promise<[Buffer]>;
    const sent = { mac: MAC, address: "127.0.0.1", port: listener.address().port };
    const answer = await postJson<{ node_id: string; sent: unknown }>(
      `${agent.url}/v1/node/wol`,
      sent,
    );
    assert.equal(answer.status, 200, answer.text);
    assert.deepEqual(answer.body.sent, sent);
    const [packet] = await received;
    assert.equal(packet.length, 102);
    assert.deepEqual(
      packet,
      Buffer.concat([
        Buffer.alloc(6, 0xff),
        ...Array.from({ length: 16 }, () => Buffer.from(MAC.replaceAll(":", ""), "hex")),
      ]),
    );
  } finally {
    listener.close();
  }

  const badMac = await postJson(`${agent.url}/v1/node/wol`, { mac: "02:00:5e", port: 9 });
  assertError(badMac, 400, "invalid_request");
  assert.match(badMac.text, /"param":"mac"/);
});
