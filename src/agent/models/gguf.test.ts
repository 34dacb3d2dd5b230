import assert from "node:assert/strict";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, test } from "node:test";
import { GgufError, readGgufHeader } from "./gguf.js";
import { estimateMemory } from "./memory-estimate.js";

const STORIES = new URL("../../../../shared/models/stories260K.gguf", import.meta.url).pathname;
const dirs: string[] = [];
after(() => Promise.all(dirs.map((dir) => rm(dir, { recursive: true, force: true }))));

test("reads the metadata of a real GGUF file", async () => {
  const header = await readGgufHeader(STORIES);
  assert.equal(header.version, 3);
  assert.equal(header.tensorCount, 48n);
  assert.equal(header.metadata.get("general.architecture"), "llama");
  assert.equal(header.metadata.get("llama.block_count"), 5);
  assert.deepEqual(header.metadata.get("tokenizer.ggml.scores"), { arrayLength: 512 });
});

test("a file that is not GGUF, or is cut short, says which check failed", async () => {
  const dir = await mkdtemp(join(tmpdir(), "rolemesh-gguf-"));
  dirs.push(dir);
  await writeFile(join(dir, "text.gguf"), "not a model at all");
  await assert.rejects(readGgufHeader(join(dir, "text.gguf")), (err: unknown) => {
    assert.ok(err instanceof GgufError);
    assert.match(err.message, /not a GGUF file/);
    return true;
  });
  const real = await import("node:fs/promises").then((fs) => fs.readFile(STORIES));
  await writeFile(join(dir, "cut.gguf"), real.subarray(0, 200));
  await assert.rejects(readGgufHeader(join(dir, "cut.gguf")), /truncated GGUF file/);
});

test("estimates weights, an f16 KV cache for the context, and overhead", async () => {
  const header = await readGgufHeader(STORIES);
  const estimate = estimateMemory({
    fileBytes: 1_185_376,
    header,
    ctxSize: 512,
    gpuLayers: undefined,
    offload: true,
  });
  // 5 layers x 512 positions x 4 KV heads x (8 + 8) wide x 2 bytes
  assert.equal(estimate.kv_cache, 5 * 512 * 4 * 16 * 2);
  assert.equal(estimate.weights, 1_185_376);
  assert.equal(estimate.total, estimate.weights + estimate.kv_cache + estimate.overhead);
  const half = estimateMemory({
    fileBytes: 1_200_000,
    header,
    ctxSize: 512,
    gpuLayers: 3,
    offload: true,
  });
  assert.equal(half.weights, 600_000, "3 of 6 offloadable layers on the GPU");
  const cpu = estimateMemory({
    fileBytes: 1_200_000,
    header,
    ctxSize: 512,
    gpuLayers: 3,
    offload: false,
  });
  assert.equal(cpu.weights, 1_200_000, "on the CPU everything is in RAM");
  const unknown = estimateMemory({
    fileBytes: 5000,
    header: null,
    ctxSize: undefined,
    gpuLayers: undefined,
    offload: true,
  });
  assert.equal(unknown.kv_cache, 0);
});
