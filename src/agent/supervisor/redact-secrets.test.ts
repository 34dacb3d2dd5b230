import assert from "node:assert/strict";
import { test } from "node:test";
import { redactSecrets } from "./redact-secrets.js";

test("values of key, token and password flags are hidden from logs", () => {
  assert.deepEqual(redactSecrets(["-m", "a.gguf", "--api-key", "s3cret", "--port", "9"]), [
    "-m",
    "a.gguf",
    "--api-key",
    "[redacted]",
    "--port",
    "9",
  ]);
});

test("the --flag=VALUE spelling is hidden too; a path that merely contains a word is not", () => {
  assert.deepEqual(
    redactSecrets(["--api-key=s3cret", "--hf-token=abc", "-m", "monkey.gguf", "x"]),
    ["--api-key=[redacted]", "--hf-token=[redacted]", "-m", "monkey.gguf", "x"],
  );
  assert.deepEqual(redactSecrets(["-m", "/models/key.gguf", "--port", "9"]), [
    "-m",
    "/models/key.gguf",
    "--port",
    "9",
  ]);
});
