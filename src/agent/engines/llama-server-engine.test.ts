import assert from "node:assert/strict";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { test } from "node:test";
import { needsMeanPooling } from "./llama-server-engine.js";

// A generative model: its GGUF sets no pooling type, so llama-server would use none.
const STORIES = fileURLToPath(
  new URL("../../../../shared/models/stories260K.gguf", import.meta.url),
);

test("an embedding server of a model without a pooling type gets mean pooling", async () => {
  assert.equal(await needsMeanPooling(["--embeddings"], STORIES), true);
  assert.equal(await needsMeanPooling(["-m", STORIES, "--embedding"], STORIES), true);
});

test("no pooling is added when embeddings are off or the arguments choose one", async () => {
  assert.equal(await needsMeanPooling([], STORIES), false);
  assert.equal(await needsMeanPooling(["--embeddings", "--pooling", "cls"], STORIES), false);
  assert.equal(await needsMeanPooling(["--embeddings", "--pooling=last"], STORIES), false);
});

/** A GGUF v3 header with no tensors and the given string and uint32 metadata. */
function ggufWith(strings: Record<string, string>, numbers: Record<string, number>): Buffer {
  const text = (value: string) => {
    const bytes = Buffer.from(value);
    const length = Buffer.alloc(8);
    length.writeBigUInt64LE(BigInt(bytes.length));
    return Buffer.concat([length, bytes]);
  };
  const u32 = (value: number) => {
    const buffer = Buffer.alloc(4);
    buffer.writeUInt32LE(value);
    return buffer;
  };
  const u64 = (value: number) => {
    const buffer = Buffer.alloc(8);
    buffer.writeBigUInt64LE(BigInt(value));
    return buffer;
  };
  const entries = [
    ...Object.entries(strings).map(([key, value]) => [text(key), u32(8), text(value)]),
    ...Object.entries(numbers).map(([key, value]) => [text(key), u32(4), u32(value)]),
  ].flat();
  const count = Object.keys(strings).length + Object.keys(numbers).length;
  return Buffer.concat([Buffer.from("GGUF"), u32(3), u64(0), u64(count), ...entries]);
}

test("a model whose GGUF sets a pooling type keeps it; an explicit none gets mean", async () => {
  const dir = await mkdtemp(join(tmpdir(), "rolemesh-pooling-"));
  try {
    const cls = join(dir, "cls.gguf");
    await writeFile(cls, ggufWith({ "general.architecture": "bert" }, { "bert.pooling_type": 2 }));
    assert.equal(await needsMeanPooling(["--embeddings"], cls), false);
    const none = join(dir, "none.gguf");
    await writeFile(none, ggufWith({ "general.architecture": "bert" }, { "bert.pooling_type": 0 }));
    assert.equal(await needsMeanPooling(["--embeddings"], none), true);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});
