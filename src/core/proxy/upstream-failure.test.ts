import assert from "node:assert/strict";
import { test } from "node:test";
import { upstreamFailure } from "./relay.js";

// Bodies as recorded from a real llama-server (../shared/llama-server/).
const LOADING = '{"error":{"message":"Loading model","type":"unavailable_error","code":503}}';
const CONTEXT =
  '{"error":{"code":400,"message":"request (2002 tokens) exceeds the available context size (512 tokens), try increasing it","type":"exceed_context_size_error","n_prompt_tokens":2002,"n_ctx":512}}';
const NO_EMBEDDINGS =
  '{"error":{"code":501,"message":"This server does not support embeddings. Start it with `--embeddings`","type":"not_supported_error"}}';
const PARSE =
  '{"error":{"code":500,"message":"[json.exception.parse_error.101] parse error","type":"server_error"}}';

test("a context overflow stays a 400 with llama-server's message and type", () => {
  const err = upstreamFailure(400, CONTEXT);
  assert.equal(err.status, 400);
  assert.deepEqual(err.toBody().error, {
    message:
      "request (2002 tokens) exceeds the available context size (512 tokens), try increasing it",
    type: "exceed_context_size_error",
    code: "invalid_request",
    param: null,
  });
});

test("'Loading model' never reaches a client: it becomes a retryable 503", () => {
  const err = upstreamFailure(503, LOADING);
  assert.equal(err.status, 503);
  assert.equal(err.retryAfterS, 1);
  assert.doesNotMatch(err.message, /Loading model/);
});

test("embeddings that are off become a 400 that says how to turn them on", () => {
  const err = upstreamFailure(501, NO_EMBEDDINGS);
  assert.equal(err.status, 400);
  assert.match(err.message, /--embeddings/);
});

test("upstream 5xx and non-JSON failures are 502 upstream_error", () => {
  assert.equal(upstreamFailure(500, PARSE).code, "upstream_error");
  const html = upstreamFailure(500, "<html>oops</html>");
  assert.equal(html.status, 502);
  assert.match(html.message, /oops/);
});
