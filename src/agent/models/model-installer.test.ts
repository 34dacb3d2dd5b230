import assert from "node:assert/strict";
import fs from "node:fs";
import { mkdtemp, rm, stat } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Readable } from "node:stream";
import { test } from "node:test";
import { checkFileName, installFileName, resolveSource, writeToFile } from "./model-installer.js";

test("hf:// is shorthand for the Hugging Face file URL; only http(s) is fetched", () => {
  assert.equal(
    resolveSource("hf://Qwen/Qwen2.5-0.5B-Instruct-GGUF/qwen2.5-0.5b-instruct-q4_k_m.gguf").href,
    "https://huggingface.co/Qwen/Qwen2.5-0.5B-Instruct-GGUF/resolve/main/qwen2.5-0.5b-instruct-q4_k_m.gguf",
  );
  assert.equal(
    resolveSource("hf://org/repo/sub/dir/m.gguf").pathname,
    "/org/repo/resolve/main/sub/dir/m.gguf",
  );
  for (const bad of ["file:///etc/passwd", "ftp://x/m.gguf", "not a url", "hf://org"]) {
    assert.throws(() => resolveSource(bad), /url:/, bad);
  }
});

test("file names stay inside the models folder", () => {
  assert.equal(checkFileName("model-q4_k_m.gguf"), "model-q4_k_m.gguf");
  for (const bad of [
    "../evil.gguf",
    "/etc/evil.gguf",
    "a/b.gguf",
    "..\\evil.gguf",
    ".hidden.gguf",
    "model.bin",
    "",
    "x\0.gguf",
  ]) {
    assert.throws(() => checkFileName(bad), /file_name:/, JSON.stringify(bad));
  }
  assert.equal(installFileName(new URL("https://h/x/m%20one.gguf?sig=1"), undefined), "m one.gguf");
  assert.throws(
    () => installFileName(new URL("https://h/x/..%2Fevil.gguf"), undefined),
    /file_name/,
  );
});

test("a cut transfer settles only once the write in flight is on disk", async () => {
  // A file system slow to write: the cut arrives while the chunk before it is being written.
  const slowFs = {
    ...fs,
    write: (...args: Parameters<typeof fs.write>) => setTimeout(() => fs.write(...args), 200),
  };
  const dir = await mkdtemp(join(tmpdir(), "rolemesh-install-"));
  const path = join(dir, "m.gguf.part");
  const body = new Readable({ read: () => undefined });
  body.push(Buffer.alloc(1000));
  setTimeout(() => body.destroy(new Error("other side closed")), 50);
  let counted = 0;
  try {
    await assert.rejects(
      writeToFile(body, fs.createWriteStream(path, { fs: slowFs }), (bytes) => (counted += bytes)),
      /other side closed/,
    );
    assert.equal(counted, 1000);
    assert.equal((await stat(path)).size, 1000, "the size a resume starts from is all on disk");
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});
