/**
 * Node commands and model management (SPEC §10) through a gateway and two agents: installs
 * from a local HTTP server with progress, resume, every check, joins and timeouts; load,
 * unload, delete everywhere, node.stop; and the admin routes' authentication.
 */
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { readdir, readFile, rm, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { GATEWAY_ROUTES } from "../src/gateway/http/gateway-routes.js";
import type { NodeInventory } from "../src/protocol/inventory.js";
import type { OperationStatus } from "../src/protocol/operations.js";
import type { StatusResponse } from "../src/protocol/registry.js";
import { startFileServer } from "./helpers/file-server.js";
import type { FileServer } from "./helpers/file-server.js";
import { assertError, postJson } from "./helpers/http-client.js";
import type { AgentProcess } from "./helpers/launcher.js";
import {
  joinArgs,
  runCli,
  startAgent,
  startGateway,
  stopAgent,
  STORIES_MODEL,
  waitUntil,
} from "./helpers/launcher.js";

const ADMIN_KEY = "models-admin-key-0123456789";
const admin = { authorization: `Bearer ${ADMIN_KEY}`, "content-type": "application/json" };
const HEARTBEAT_S = 1;

describe("model management through the gateway", () => {
  let files: FileServer;
  let stories: Buffer;
  let storiesSha: string;
  let gateway: AgentProcess;
  let nodeA: AgentProcess;
  let nodeB: AgentProcess;

  const command = (node: string, name: string, args: Record<string, unknown>) =>
    postJson(`${gateway.url}/api/nodes/${node}/commands/${name}`, args, { headers: admin });
  const cli = (...args: string[]) => cliWatching(args);
  const cliWatching = (
    args: string[],
    onOutput?: (output: { stdout: string; stderr: string }) => void,
  ) =>
    runCli(
      ["models", ...args, "--gateway", gateway.url],
      { ROLEMESH_ADMIN_KEY: ADMIN_KEY },
      undefined,
      onOutput,
    );
  const modelFiles = async (agent: AgentProcess) => {
    try {
      return (await readdir(join(agent.stateDir, "models"))).filter(
        (name) => name !== "installed.json",
      );
    } catch {
      return [];
    }
  };
  /** Follows an operation through the gateway's SSE until it ends; every status seen. */
  const follow = async (opId: string): Promise<OperationStatus[]> => {
    const answer = await fetch(`${gateway.url}/api/operations/${opId}`, {
      headers: { ...admin, accept: "text/event-stream" },
    });
    assert.equal(answer.status, 200);
    const text = await answer.text();
    return text
      .split("\n\n")
      .filter((event) => event.startsWith("data: "))
      .map((event) => JSON.parse(event.slice(6)) as OperationStatus);
  };
  const install = async (node: string, args: Record<string, unknown>) => {
    const started = await command(node, "model.install", args);
    assert.equal(started.status, 202, started.text);
    const statuses = await follow((started.body as { op_id: string }).op_id);
    return {
      started: started.body as { op_id: string; joined: boolean },
      statuses,
      last: statuses.at(-1)!,
    };
  };

  before(async () => {
    stories = await readFile(STORIES_MODEL);
    storiesSha = createHash("sha256").update(stories).digest("hex");
    files = await startFileServer();
    gateway = await startGateway({
      config: { admin_key: ADMIN_KEY, heartbeat_interval_s: HEARTBEAT_S },
    });
    const agent = (nodeId: string, engine: Record<string, unknown>) =>
      startAgent({
        config: { node_id: nodeId, models: [], ...engine },
        args: joinArgs(gateway, { heartbeatS: HEARTBEAT_S }),
      });
    // Real inference on node-a; node-b never serves, so one engine runs at a time.
    nodeA = await agent("node-a", { engine: "embedded" });
    nodeB = await agent("node-b", {});
    await waitUntil(
      async () =>
        (await gateway.json<StatusResponse>("/api/status", { headers: admin })).peers.length === 2,
      "both agents to register",
    );
  });

  after(async () => {
    await stopAgent(nodeA);
    await stopAgent(nodeB);
    await stopAgent(gateway);
  });

  test("install with progress on a terminal-less CLI; the model then loads and serves", async () => {
    // Held halfway until the CLI shows the download, so its progress is seen whatever the speed.
    let release = () => {};
    const held = new Promise<void>((resolve) => (release = resolve));
    files.files.set("/models/stories260K.gguf", { body: stories, hold: held });
    const result = await cliWatching(
      [
        "install",
        `${files.url}/models/stories260K.gguf?token=secret-token`,
        "--id",
        "tiny",
        "--roles",
        "story,chat",
        "--sha256",
        storiesSha,
        "--node",
        "node-a",
      ],
      ({ stderr }) => {
        if (/downloading .*[1-9]\d*\.\d%/.test(stderr)) release();
      },
    );
    assert.equal(result.code, 0, result.stderr);
    assert.match(result.stdout, /installing tiny on node node-a \(op-/);
    assert.match(result.stdout, /installed tiny: .*stories260K\.gguf \(1185376 bytes\)/);
    assert.match(result.stderr, /downloading/);
    assert.match(result.stderr, /verifying/);
    assert.deepEqual(await modelFiles(nodeA), ["stories260K.gguf"]);
    assert.doesNotMatch(nodeA.output.join("\n") + gateway.output.join("\n"), /secret-token/);
    assert.match(
      gateway.output.join("\n"),
      /"command":"model.install".*"by":"admin"|"by":"admin".*"command":"model.install"/,
    );

    await waitUntil(
      async () =>
        (
          await gateway.json<{ data: { id: string }[] }>("/v1/models", { headers: admin })
        ).data.some((m) => m.id === "tiny"),
      "the installed model to be listed by the gateway",
    );
    const chat = await postJson(
      `${gateway.url}/v1/chat/completions`,
      { model: "story", messages: [{ role: "user", content: "Once" }], max_tokens: 8 },
      { headers: admin },
    );
    assert.equal(chat.status, 200, chat.text);
    assert.equal(chat.headers["x-rolemesh-node"], "node-a");
    assert.equal(chat.headers["x-rolemesh-model"], "tiny");
  });

  test("progress events stream phases and growing byte counts; a repeat answers at once", async () => {
    files.files.set("/b/stories.gguf", { body: stories });
    const { statuses, last } = await install("node-b", {
      url: `${files.url}/b/stories.gguf`,
      model_id: "tiny",
    });
    assert.equal(last.state, "succeeded", JSON.stringify(last.error));
    const phases = [...new Set(statuses.map((status) => status.progress.phase))];
    assert.ok(phases.includes("downloading") && phases.at(-1) === "done", phases.join(","));
    const bytes = statuses.map((status) => status.progress.bytes);
    assert.deepEqual(
      bytes,
      [...bytes].sort((a, b) => a - b),
      "bytes never go back",
    );
    assert.equal(last.progress.total_bytes, stories.length);
    assert.equal(last.progress.percent, 100);

    const again = await command("node-b", "model.install", {
      url: `${files.url}/b/stories.gguf`,
      model_id: "tiny",
    });
    assert.equal(again.status, 200, again.text);
    assert.equal((again.body as { result: { installed: boolean } }).result.installed, true);
  });

  test("a transfer cut halfway resumes from where it stopped", async () => {
    files.files.set("/cut/resumed.gguf", { body: stories, fault: "cut-once" });
    const { last } = await install("node-b", {
      url: `${files.url}/cut/resumed.gguf`,
      model_id: "resumed",
      sha256: storiesSha,
    });
    assert.equal(last.state, "succeeded", JSON.stringify(last.error));
    const ranges = files.requests.filter((r) => r.path === "/cut/resumed.gguf").map((r) => r.range);
    assert.equal(ranges.length, 2, ranges.join(" "));
    assert.equal(ranges[0], undefined);
    // The second request asks for the rest from the bytes that arrived before the cut.
    const from = Number(/^bytes=(\d+)-$/.exec(ranges[1] ?? "")?.[1]);
    assert.ok(from > 0 && from <= stories.length / 2, ranges[1]);
    assert.ok((await modelFiles(nodeB)).includes("resumed.gguf"));
  });

  test("a wrong sha256, a truncated file, a non-GGUF and a file larger than the disk never land, and say which check failed", async () => {
    files.files.set("/bad/wrong-sha.gguf", { body: stories });
    files.files.set("/bad/truncated.gguf", { body: stories.subarray(0, 600_000) });
    files.files.set("/bad/too-big.gguf", { body: stories, fault: "huge" });
    files.files.set("/bad/not-a-model.gguf", {
      body: Buffer.from("<html>login required</html>\n".repeat(100)),
    });
    const cases: [string, Record<string, unknown>, string, RegExp][] = [
      ["wrong-sha", { sha256: "0".repeat(64) }, "checksum_mismatch", /sha256 check failed/],
      ["truncated", {}, "invalid_model_file", /truncated GGUF file/],
      ["not-a-model", {}, "invalid_model_file", /not a GGUF file/],
      ["too-big", {}, "insufficient_storage", /not enough disk space/],
    ];
    for (const [name, extra, code, message] of cases) {
      const { last } = await install("node-b", {
        url: `${files.url}/bad/${name}.gguf`,
        model_id: name,
        ...extra,
      });
      assert.equal(last.state, "failed", name);
      assert.equal(last.error?.code, code, name);
      assert.match(last.error?.message ?? "", message);
    }
    const present = await modelFiles(nodeB);
    for (const [name] of cases) {
      assert.ok(
        !present.some((file) => file.startsWith(name)),
        `${name} left ${present.join(", ")}`,
      );
    }
    const inventory = await nodeB.json<NodeInventory>("/v1/node/inventory");
    assert.ok(!inventory.models.some((model) => cases.some(([name]) => model.id === name)));
  });

  test("names that would leave the models folder are refused", async () => {
    for (const args of [
      { url: `${files.url}/x/..%2Fevil.gguf`, model_id: "evil" },
      { url: `${files.url}/x/a.gguf`, model_id: "evil", file_name: "../evil.gguf" },
      { url: `${files.url}/x/a.gguf`, model_id: "evil", file_name: "/etc/evil.gguf" },
      { url: `file:///etc/passwd`, model_id: "evil" },
    ]) {
      const answer = await command("node-b", "model.install", args);
      assertError(answer, 400, "invalid_request");
    }
    assert.ok(!files.requests.some((request) => request.path.includes("evil")));
  });

  test("a file belongs to one model from one source: any other claim on it is a 409", async () => {
    const refused = async (args: Record<string, string>, message: RegExp) => {
      const answer = await command("node-a", "model.install", args);
      assertError(answer, 409, "conflict");
      assert.match((answer.body as { error: { message: string } }).error.message, message);
    };
    let release = () => {};
    files.files.set("/twin-a/same.gguf", {
      body: stories,
      hold: new Promise((resolve) => (release = resolve)),
    });
    files.files.set("/twin-b/same.gguf", { body: stories });
    const first = await command("node-a", "model.install", {
      url: `${files.url}/twin-a/same.gguf`,
      model_id: "twin-a",
    });
    assert.equal(first.status, 202, first.text);
    const claims: [Record<string, string>, RegExp, RegExp][] = [
      // Another id whose URL ends in the same file name.
      [
        { url: `${files.url}/twin-b/same.gguf`, model_id: "twin-b" },
        /same\.gguf is being installed for model "twin-a"/,
        /same\.gguf holds model "twin-a"/,
      ],
      // The same id from another source.
      [
        { url: `${files.url}/twin-b/same.gguf`, model_id: "twin-a" },
        /same\.gguf is being installed for model "twin-a"/,
        /model "twin-a" is installed from another source/,
      ],
    ];
    try {
      for (const [args, whileRunning] of claims) await refused(args, whileRunning);
    } finally {
      release();
    }
    const done = await follow((first.body as { op_id: string }).op_id);
    assert.equal(done.at(-1)?.state, "succeeded", JSON.stringify(done.at(-1)?.error));
    for (const [args, , landed] of claims) await refused(args, landed);

    // A file in the models folder that this agent did not install.
    const placed = join(nodeA.stateDir, "models", "placed.gguf");
    await writeFile(placed, "the operator's own");
    files.files.set("/placed/placed.gguf", { body: stories });
    await refused(
      { url: `${files.url}/placed/placed.gguf`, model_id: "placed" },
      /placed\.gguf exists and was not installed from/,
    );
    assert.equal(await readFile(placed, "utf8"), "the operator's own");
    assert.ok(
      !files.requests.some(
        ({ path }) => path.startsWith("/twin-b/") || path === "/placed/placed.gguf",
      ),
      "nothing was downloaded for a refused claim",
    );
    await rm(placed);
    assert.equal((await command("node-a", "model.delete", { model_id: "twin-a" })).status, 200);
  });

  test("an install repeated while running joins it; a timeout says still installing", async () => {
    let release = () => {};
    files.files.set("/slow/slow.gguf", {
      body: stories,
      hold: new Promise((resolve) => (release = resolve)),
    });
    const args = { url: `${files.url}/slow/slow.gguf`, model_id: "slow" };
    const first = await command("node-b", "model.install", args);
    assert.equal(first.status, 202, first.text);
    const second = await command("node-b", "model.install", args);
    const opId = (first.body as { op_id: string }).op_id;
    assert.deepEqual(second.body, {
      node_id: "node-b",
      command: "model.install",
      op_id: opId,
      joined: true,
    });

    const waited = await cli(
      "install",
      args.url,
      "--id",
      "slow",
      "--node",
      "node-b",
      "--timeout",
      "1",
    );
    assert.equal(waited.code, 3, waited.stderr);
    assert.match(waited.stdout, new RegExp(`joined the running install slow .*${opId}`));
    assert.match(waited.stderr, /still installing slow after 1 s/);
    const running = await gateway.json<OperationStatus>(`/api/operations/${opId}`, {
      headers: admin,
    });
    assert.equal(running.state, "running");
    assert.ok(running.progress.bytes > 0 && running.progress.bytes < stories.length);

    release();
    const done = await follow(opId);
    assert.equal(done.at(-1)?.state, "succeeded");
    const again = await cli("install", args.url, "--id", "slow", "--node", "node-b");
    assert.equal(again.code, 0, again.stderr);
    assert.match(again.stdout, /slow is installed already/);
  });

  test("a running install is cancelled by its id; the .part stays and the next install resumes", async () => {
    let release = () => {};
    files.files.set("/held/cancelled.gguf", {
      body: stories,
      hold: new Promise((resolve) => (release = resolve)),
    });
    const args = { url: `${files.url}/held/cancelled.gguf`, model_id: "cancelled" };
    const started = await command("node-b", "model.install", args);
    assert.equal(started.status, 202, started.text);
    const opId = (started.body as { op_id: string }).op_id;
    const following = follow(opId);
    await waitUntil(
      async () =>
        (await gateway.json<OperationStatus>(`/api/operations/${opId}`, { headers: admin }))
          .progress.bytes > 0,
      "half the file to arrive",
    );

    const cancelled = await cli("cancel", opId);
    assert.equal(cancelled.code, 0, cancelled.stderr);
    assert.match(cancelled.stdout, new RegExp(`${opId} cancelled`));
    assert.equal((await following).at(-1)?.state, "cancelled", "followers see the end");
    assert.ok((await modelFiles(nodeB)).includes("cancelled.gguf.part"), "the .part is kept");
    const unknown = await cli("cancel", "op-nobody");
    assert.equal(unknown.code, 1);
    assert.match(unknown.stderr, /no live node knows operation "op-nobody"/);

    release();
    const { last } = await install("node-b", args);
    assert.equal(last.state, "succeeded", JSON.stringify(last.error));
    const held = files.requests.filter((request) => request.path === "/held/cancelled.gguf");
    assert.match(String(held.at(-1)?.range), /^bytes=[1-9]\d*-$/, "resumed from the .part");
  });

  test("unload frees the device; delete removes the files on every node that had the model", async () => {
    assert.equal((await cli("load", "tiny", "--node", "node-a")).code, 0);
    let inventory = await nodeA.json<NodeInventory>("/v1/node/inventory");
    assert.equal(inventory.devices[0]?.server.state, "ready");
    const unloaded = await cli("unload", "tiny");
    assert.equal(unloaded.code, 0, unloaded.stderr);
    inventory = await nodeA.json<NodeInventory>("/v1/node/inventory");
    assert.equal(inventory.devices[0]?.server.state, "stopped");
    assert.equal(inventory.devices[0]?.vram_reserved_mb, 0);

    const listed = await cli("list");
    assert.match(listed.stdout, /tiny\s+story,chat\s+node-a/);
    assert.match(listed.stdout, /tiny\s+-\s+node-b/);
    await waitUntil(async () => {
      const status = await gateway.json<StatusResponse>("/api/status", { headers: admin });
      return (
        status.peers.filter((peer) => peer.models.some((model) => model.id === "tiny")).length === 2
      );
    }, "both nodes to report tiny");
    const deleted = await cli("delete", "tiny");
    assert.equal(deleted.code, 0, deleted.stderr);
    assert.ok(!(await modelFiles(nodeA)).includes("stories260K.gguf"));
    assert.ok(!(await modelFiles(nodeB)).includes("stories.gguf"));
    const installed = JSON.parse(
      await readFile(join(nodeB.stateDir, "models/installed.json"), "utf8"),
    );
    assert.ok(!installed.some((model: { model_id: string }) => model.model_id === "tiny"));
    assert.equal((await cli("delete", "tiny")).code, 1, "nothing left to delete");
  });

  test("node.stop deregisters the node and it exits 0", async () => {
    const answer = await command("node-b", "node.stop", {});
    assert.equal(answer.status, 202, answer.text);
    assert.deepEqual(await nodeB.exited, { code: 0, signal: null });
    assert.match(nodeB.output.join("\n"), /deregistered from the gateway/);
    const status = await gateway.json<StatusResponse>("/api/status", { headers: admin });
    assert.deepEqual(
      status.peers.map((peer) => peer.node_id),
      ["node-a"],
    );
  });

  test("the CLI also talks to one agent directly", async () => {
    files.files.set("/direct/direct.gguf", { body: stories });
    const direct = (...args: string[]) => runCli(["models", ...args, "--agent", nodeA.url]);
    const installed = await direct("install", `${files.url}/direct/direct.gguf`, "--id", "direct");
    assert.equal(installed.code, 0, installed.stderr);
    assert.match(installed.stdout, /installed direct/);
    assert.match((await direct("list")).stdout, /direct\s+-\s+node-a/);
    assert.equal((await direct("delete", "direct")).code, 0);
    assert.doesNotMatch((await direct("list")).stdout, /direct/);
    const usage = await direct("load", "x", "--node", "node-a");
    assert.equal(usage.code, 2, "--node goes with a gateway");
  });

  test("installed models are remembered across an agent restart", async () => {
    const restarted = await startAgent({
      config: { node_id: "node-b", models: [] },
      stateDir: nodeB.stateDir,
    });
    try {
      const inventory = await restarted.json<NodeInventory>("/v1/node/inventory");
      assert.deepEqual(inventory.models.map((model) => model.id).sort(), [
        "cancelled",
        "resumed",
        "slow",
      ]);
    } finally {
      await stopAgent(restarted);
    }
  });

  test("every admin route of the gateway answers 401 without the admin key", async () => {
    const routes = GATEWAY_ROUTES.filter((route) => route.access === "admin");
    assert.ok(routes.length >= 8);
    for (const route of routes) {
      const path = route.path.replace(/:[a-z_]+/g, "x");
      for (const headers of [{}, { authorization: "Bearer wrong-key" }] as Record<
        string,
        string
      >[]) {
        const answer = await fetch(`${gateway.url}${path}`, { method: route.method, headers });
        assert.equal(answer.status, 401, `${route.method} ${route.path}`);
        await answer.arrayBuffer();
      }
    }
  });
});
