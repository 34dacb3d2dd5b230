import assert from "node:assert/strict";
import { test } from "node:test";
import { AgentConfigSchema } from "../../agent/config/agent-config.js";
import { ConfigError } from "./config-error.js";
import { parseConfigText } from "./load-config.js";

const MODEL = new URL("../../../../shared/models/stories260K.gguf", import.meta.url).pathname;

function problems(text: string, env: NodeJS.ProcessEnv = {}): string[] {
  try {
    parseConfigText(text, "agent.yaml", AgentConfigSchema, env);
  } catch (err) {
    assert.ok(err instanceof ConfigError, String(err));
    return err.message.split("\n");
  }
  return [];
}

test("an empty file gives every default of SPEC §2", () => {
  const config = parseConfigText("", "agent.yaml", AgentConfigSchema, {});
  assert.equal(config.listen_host, "127.0.0.1");
  assert.equal(config.listen_port, 8090);
  assert.equal(config.max_pending_requests_per_device, 2);
  assert.equal(config.llama_server_startup_timeout_s, 30);
  assert.equal(config.engine, "auto");
  assert.deepEqual(config.models, []);
});

test("environment references are substituted, typed when they stand alone", () => {
  const config = parseConfigText(
    `listen_port: \${PORT:-9001}\nauth_token: "\${TOKEN}"\nlabels: { zone: "eu-\${ZONE:-west}" }\n`,
    "agent.yaml",
    AgentConfigSchema,
    { TOKEN: "s3cret" },
  );
  assert.equal(config.listen_port, 9001);
  assert.equal(config.auth_token, "s3cret");
  assert.deepEqual(config.labels, { zone: "eu-west" });
});

test("an unset variable without default names the variable and its line", () => {
  assert.deepEqual(problems("node_id: ok\nauth_token: ${NOPE}\n"), [
    "agent.yaml:2:13: environment variable NOPE is not set (write ${NOPE:-default} to allow that)",
  ]);
});

test("every problem is reported with file, line, key path and the closest known key", () => {
  const found = problems(
    [
      "listen_hots: 0.0.0.0",
      "backend: cudaa",
      "max_pending_requests_per_device: two",
      "models:",
      `  - model_id: a`,
      `    path: ${MODEL}`,
      "    ctx_sise: 512",
    ].join("\n"),
  );
  assert.deepEqual(found, [
    'agent.yaml:1:1: listen_hots: unknown key "listen_hots" (did you mean "listen_host"?)',
    'agent.yaml:2:10: backend: expected one of auto, cuda, rocm, metal, vulkan, sycl, cpu, got "cudaa" (did you mean "cuda"?)',
    'agent.yaml:3:34: max_pending_requests_per_device: expected number, got string "two"',
    'agent.yaml:7:5: models[0].ctx_sise: unknown key "ctx_sise" (did you mean "ctx_size"?)',
  ]);
});

test("a missing model file and a missing required key are located", () => {
  const found = problems("models:\n  - model_id: a\n    path: /no/such.gguf\n  - path: x\n");
  assert.match(found[0] ?? "", /^agent\.yaml:3:11: models\[0\]\.path: model file not found/);
  assert.match(found[1] ?? "", /^agent\.yaml:4:5: models\[1\]\.model_id: required key is missing/);
});

test("duplicate model ids are refused", () => {
  const found = problems(
    `models:\n  - {model_id: a, path: ${MODEL}}\n  - {model_id: a, path: ${MODEL}}\n`,
  );
  assert.match(found.join("\n"), /models\[1\]\.model_id: duplicate model_id "a"/);
});

test("a non-loopback listen_host without auth_token is refused, saying why", () => {
  const found = problems("listen_host: 0.0.0.0\n");
  assert.match(
    found.join("\n"),
    /auth_token: listen_host 0\.0\.0\.0 is not a loopback address and auth_token is empty/,
  );
  assert.deepEqual(problems("listen_host: 0.0.0.0\nallow_insecure: true\n"), []);
  assert.deepEqual(problems("listen_host: 192.168.1.5\nauth_token: t\n"), []);
  assert.deepEqual(problems("listen_host: localhost\n"), []);
});

test("YAML syntax errors are located", () => {
  const found = problems("models: [\n");
  assert.match(found[0] ?? "", /^agent\.yaml:\d+:\d+: /);
});
