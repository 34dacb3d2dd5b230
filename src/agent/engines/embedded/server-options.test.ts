import assert from "node:assert/strict";
import { test } from "node:test";
import { parseServerOptions } from "./server-options.js";

test("reads llama-server's options under their spellings", () => {
  const options = parseServerOptions(
    [
      "-m",
      "/m.gguf",
      "--host",
      "127.0.0.1",
      "--port",
      "9000",
      "--alias",
      "chat",
      "-c",
      "512",
    ].concat(["--n-gpu-layers", "0", "-np", "2", "--threads", "1"]),
  );
  assert.deepEqual(options, {
    modelPath: "/m.gguf",
    host: "127.0.0.1",
    port: 9000,
    alias: "chat",
    ctxSize: 512,
    gpuLayers: 0,
    parallel: 2,
    threads: 1,
    ignored: [],
  });
});

test("unknown options are set aside with their values; the alias defaults to the path", () => {
  const options = parseServerOptions(["--flash-attn", "on", "-m", "a.gguf", "--no-webui"]);
  assert.deepEqual(options.ignored, ["--flash-attn", "on", "--no-webui"]);
  assert.equal(options.alias, "a.gguf");
  assert.equal(options.parallel, 1);
});

test("a missing model or a malformed number is an error", () => {
  assert.throws(() => parseServerOptions(["--port", "1"]), /-m MODEL_PATH is required/);
  assert.throws(
    () => parseServerOptions(["-m", "a", "-c", "lots"]),
    /ctxSize must be a whole number/,
  );
  assert.throws(() => parseServerOptions(["-m"]), /-m needs a value/);
});
