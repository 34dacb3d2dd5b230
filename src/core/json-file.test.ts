import assert from "node:assert/strict";
import { mkdtemp, readdir, rm, stat } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { readJsonFile, writeJsonFile } from "./json-file.js";

test("writes to one file that finish together keep the last one asked, and leave no temporary", async () => {
  const dir = await mkdtemp(join(tmpdir(), "rolemesh-json-"));
  try {
    const file = join(dir, "keys.json");
    await Promise.all(Array.from({ length: 50 }, (_, i) => writeJsonFile(file, { version: i })));
    assert.deepEqual(await readJsonFile(file, null), { version: 49 });
    assert.deepEqual(await readdir(dir), ["keys.json"]);
    assert.equal((await stat(file)).mode & 0o777, 0o600);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});
