import assert from "node:assert/strict";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, test } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import { readJsonFile } from "../../core/json-file.js";
import { createLogger } from "../../core/logger.js";
import { NodeIdentities } from "./node-identities.js";

const dirs: string[] = [];
after(() =>
  Promise.all(dirs.map((dir) => rm(dir, { recursive: true, force: true, maxRetries: 10 }))),
);

test("bindings are kept up to the limit: the oldest of nodes that left go, live ones stay", async () => {
  const dir = await mkdtemp(join(tmpdir(), "rolemesh-identities-"));
  dirs.push(dir);
  const identities = await NodeIdentities.open(dir, 2, createLogger("silent"));
  const live = new Set(["first"]);
  const isLive = (nodeId: string) => live.has(nodeId);
  for (const nodeId of ["first", "second", "third"]) {
    assert.equal(identities.check(nodeId, `${nodeId}-secret`, isLive).kind, "bound");
  }
  // "first" is the oldest but live: "second", a node that left, made room for "third".
  assert.deepEqual(identities.check("first", "forged", isLive), { kind: "other" });
  assert.equal(identities.matches("second", "forged"), true, "second is bound to nobody now");
  assert.equal(identities.matches("third", "forged"), false);

  const file = join(dir, "node-identities.json");
  const stored = async () => Object.keys(await readJsonFile<object>(file, {})).sort();
  // The writes land in order; the last one holds "third".
  for (let waited = 0; !(await stored()).includes("third") && waited < 10_000; waited += 20) {
    await sleep(20);
  }
  assert.deepEqual(await stored(), ["first", "third"]);
});
