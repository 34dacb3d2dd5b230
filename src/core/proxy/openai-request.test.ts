import assert from "node:assert/strict";
import { test } from "node:test";
import { RoleMeshError } from "../errors.js";
import { checkOpenAIRequest } from "./openai-request.js";

const chat = (content: string) => ({ model: "m", messages: [{ role: "user", content }] });

test("a lone UTF-16 surrogate is the client's mistake: 400 naming where it is", () => {
  for (const text of ["\ud800", "a\udfffb", "x\ud83d"]) {
    assert.throws(
      () => checkOpenAIRequest("/v1/chat/completions", chat(text)),
      (err: unknown) =>
        err instanceof RoleMeshError &&
        err.code === "invalid_request" &&
        err.param === "messages.0.content" &&
        /unpaired UTF-16 surrogate/.test(err.message),
    );
  }
  assert.throws(
    () => checkOpenAIRequest("/v1/completions", { prompt: "ok", extra: { "\udc00": 1 } }),
    (err: unknown) => err instanceof RoleMeshError && err.param === "extra.\udc00",
  );
});

test("surrogate pairs (emoji, astral characters) are ordinary text", () => {
  const request = checkOpenAIRequest("/v1/chat/completions", chat("a story 😀 𝔘 \u{1F600}"));
  assert.equal(request.model, "m");
  assert.equal(checkOpenAIRequest("/v1/embeddings", { input: ["😀", "🐈 cat"] }).stream, false);
});
