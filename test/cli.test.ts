/** The `rolemesh` command line: config check, schema, help and the agent alias. */
import assert from "node:assert/strict";
import { readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { test } from "node:test";
import {
  ROOT,
  runCli,
  startAgent,
  startGateway,
  STORIES_MODEL,
  tempDir,
  testModel,
  waitUntil,
} from "./helpers/launcher.js";

const EXAMPLE = "configs/node_agent.example.yaml";

test("the shipped example config is valid once ROLEMESH_MODEL names a model file", async () => {
  const ok = await runCli(["config", "check", EXAMPLE], { ROLEMESH_MODEL: STORIES_MODEL });
  assert.equal(ok.code, 0, ok.stderr);
  assert.equal(ok.stdout.trim(), `${EXAMPLE}: ok (agent config)`);
  const missing = await runCli(["config", "check", EXAMPLE]);
  assert.equal(missing.code, 2);
  assert.match(missing.stderr, /node_agent\.example\.yaml:\d+:\d+: .*ROLEMESH_MODEL is not set/);
});

test("config check prints every problem with file, line, key and what was expected", async () => {
  const file = join(await tempDir(), "agent.yaml");
  await writeFile(
    file,
    "listen_prot: 80\nbackend: cuda-ish\nmodels:\n  - model_id: a\n    path: /nowhere.gguf\n",
  );
  const result = await runCli(["config", "check", file]);
  assert.equal(result.code, 2);
  const lines = result.stderr.trim().split("\n");
  assert.match(
    lines[0] ?? "",
    /agent\.yaml:1:1: listen_prot: unknown key "listen_prot" \(did you mean "listen_port"\?\)/,
  );
  assert.match(lines[1] ?? "", /agent\.yaml:2:10: backend: expected one of auto, cuda/);
  assert.match(lines[2] ?? "", /agent\.yaml:5:11: models\[0\]\.path: model file not found/);
  assert.match(lines[3] ?? "", /agent\.yaml: 3 problems/);
});

test("a node id outside letters, digits, . _ - is refused: it must fit an HTTP header", async () => {
  const file = join(await tempDir(), "agent.yaml");
  await writeFile(file, "node_id: gpu-節点\n");
  const result = await runCli(["config", "check", file]);
  assert.equal(result.code, 2);
  assert.match(result.stderr, /node_id: letters, digits, \. _ and - only/);
});

test("--host or --port in extra arguments would expose a server: refused", async () => {
  const file = join(await tempDir(), "agent.yaml");
  await writeFile(
    file,
    `llama_server_args: ["--host", "0.0.0.0"]\nmodels:\n  - model_id: a\n    path: ${STORIES_MODEL}\n    args: ["--port=9000"]\n`,
  );
  const result = await runCli(["config", "check", file]);
  assert.equal(result.code, 2);
  assert.match(
    result.stderr,
    /llama_server_args\[0\]: --host is not allowed: managed servers always listen on 127\.0\.0\.1/,
  );
  assert.match(result.stderr, /models\[0\]\.args\[0\]: --port is not allowed/);
});

test("a secret that is not a string is reported without its value", async () => {
  const file = join(await tempDir(), "gateway.yaml");
  await writeFile(file, "join_token: ${JOIN}\n");
  const result = await runCli(["config", "check", file, "--kind", "gateway"], {
    JOIN: "98765432101",
  });
  assert.equal(result.code, 2);
  assert.match(result.stderr, /join_token: expected string, got a number \(hidden\) \(quote it/);
  assert.doesNotMatch(result.stderr, /98765432101/);
});

test("a secret left out of the config comes from its environment variable", async () => {
  const file = join(await tempDir(), "gateway.yaml");
  await writeFile(file, "listen_host: 0.0.0.0\n");
  const check = (env: Record<string, string>) =>
    runCli(["config", "check", file, "--kind", "gateway"], env);
  assert.equal((await check({})).code, 2);
  const withEnv = await check({ ROLEMESH_JOIN_TOKEN: "join-token-from-env" });
  assert.equal(withEnv.code, 0, withEnv.stderr);
});

test("--join-token-file and --key-file keep secrets off the command line", async () => {
  const dir = await tempDir();
  const tokenFile = join(dir, "join-token");
  const keyFile = join(dir, "admin-key");
  await writeFile(tokenFile, "join-token-from-a-file\n", { mode: 0o600 });
  await writeFile(keyFile, "admin-key-from-a-file-0123\n", { mode: 0o600 });
  const gateway = await startGateway({
    config: { heartbeat_interval_s: 1 },
    args: ["--join-token-file", tokenFile],
    env: { ROLEMESH_ADMIN_KEY: "admin-key-from-a-file-0123" },
  });
  const agent = await startAgent({
    config: { node_id: "from-files", models: [testModel()] },
    args: ["--dispatcher-url", gateway.url, "--join-token-file", tokenFile],
  });
  const status = () => runCli(["status", "--gateway", gateway.url, "--key-file", keyFile]);
  await waitUntil(
    async () => (await status()).stdout.includes("from-files"),
    "the agent to register",
  );
  assert.ok(!(await readFile(`/proc/${agent.pid}/cmdline`, "utf8")).includes("join-token-from"));
  const withoutKey = await runCli(["status", "--gateway", gateway.url]);
  assert.equal(withoutKey.code, 1);
  assert.match(withoutKey.stderr, /admin key/);
  const both = await runCli(["status", "--key", "k", "--key-file", keyFile]);
  assert.equal(both.code, 2);
  assert.match(both.stderr, /--key and --key-file are two ways to give one secret/);
});

test("config check names a file it cannot read", async () => {
  const result = await runCli(["config", "check", "/no/such/agent.yaml"]);
  assert.equal(result.code, 2);
  assert.match(result.stderr, /\/no\/such\/agent\.yaml: cannot read config: file not found/);
});

test("config schema prints a JSON Schema with every SPEC key", async () => {
  const result = await runCli(["config", "schema"]);
  assert.equal(result.code, 0, result.stderr);
  const schema = JSON.parse(result.stdout) as { properties: Record<string, unknown> };
  for (const key of [
    "listen_host",
    "auth_token",
    "llama_server_startup_timeout_s",
    "models",
    "devices",
  ]) {
    assert.ok(key in schema.properties, key);
  }
});

test("every command has --help; a wrong command is a usage error", async () => {
  for (const args of [
    ["--help"],
    ["agent", "--help"],
    ["config", "check", "--help"],
    ["engine", "build", "--help"],
  ]) {
    const result = await runCli(args);
    assert.equal(result.code, 0, `${args.join(" ")}: ${result.stderr}`);
    assert.match(result.stdout, /Usage: rolemesh/);
  }
  const wrong = await runCli(["agnet"]);
  assert.equal(wrong.code, 2);
  assert.match(wrong.stderr, /unknown command 'agnet'/);
  for (const args of [
    ["agent", "--bogus"],
    ["config", "schema", "--kind", "x"],
  ]) {
    assert.equal((await runCli(args)).code, 2, `${args.join(" ")} is a usage error`);
  }
});

test("rolemesh-node-agent is an alias of rolemesh agent", async () => {
  const result = await runCli(["--help"], {}, join(ROOT, "bin/rolemesh-node-agent.js"));
  assert.equal(result.code, 0, result.stderr);
  assert.match(result.stdout, /Usage: rolemesh agent/);
});

test("the gateway and up example configs are checked as what they are", async () => {
  const gateway = await runCli(["config", "check", "configs/gateway.example.yaml"]);
  assert.equal(gateway.code, 0, gateway.stderr);
  assert.match(gateway.stdout, /ok \(gateway config\)/);
  const up = await runCli(["config", "check", "configs/rolemesh.example.yaml"], {
    ROLEMESH_MODEL: STORIES_MODEL,
  });
  assert.equal(up.code, 0, up.stderr);
  assert.match(up.stdout, /ok \(up config\)/);
});

test("a gateway on a LAN address without join_token refuses to start, saying why", async () => {
  const result = await runCli(["gateway", "--listen", "0.0.0.0:0"]);
  assert.equal(result.code, 2);
  assert.match(
    result.stderr,
    /join_token: listen_host 0\.0\.0\.0 is not a loopback address and join_token is empty/,
  );
});
