import assert from "node:assert/strict";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { NODE_ID_PATTERN } from "../protocol/registry.js";
import { resolveNodeId } from "./node-id.js";

test("a generated node id is kept, fits the pattern, and an empty file left by a crash counts as none", async () => {
  const dir = await mkdtemp(join(tmpdir(), "rolemesh-node-id-"));
  try {
    const first = await resolveNodeId("", dir);
    assert.match(first, NODE_ID_PATTERN);
    assert.equal(await resolveNodeId("", dir), first, "kept across restarts");
    await writeFile(join(dir, "node_id"), "");
    const fresh = await resolveNodeId("", dir);
    assert.match(fresh, NODE_ID_PATTERN);
    assert.equal((await readFile(join(dir, "node_id"), "utf8")).trim(), fresh);
    assert.equal(await resolveNodeId("gpu-1", dir), "gpu-1", "the configured id wins");
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});
