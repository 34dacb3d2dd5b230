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
