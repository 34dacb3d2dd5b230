#!/usr/bin/env node
// Runs every *.test.ts under src/ and test/ through node:test with tsx.
// Node 20's `node --test` expands no globs and ignores .ts files, so the list is built here;
// a run that finds no file fails instead of passing with zero tests.
//
// `--real` runs the end-to-end tests (test/) against the real llama-server that an agent here
// would use (`rolemesh engine status`: PATH, or a build of `rolemesh engine build`) instead of
// the fake; it fails when there is none. Other arguments keep only files whose path has them.
import { execFileSync, spawnSync } from "node:child_process";
import { readdirSync } from "node:fs";
import { join, resolve } from "node:path";

function findTests(dir) {
  const found = [];
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    if (entry.isDirectory() && entry.name !== "node_modules") found.push(...findTests(path));
    else if (entry.isFile() && entry.name.endsWith(".test.ts")) found.push(path);
  }
  return found;
}

/** The environment that points the end-to-end tests at the real llama-server. */
function realEngineEnv() {
  const status = JSON.parse(
    execFileSync(
      process.execPath,
      ["--import", "tsx", "src/cli/rolemesh.ts", "engine", "status", "--json"],
      { encoding: "utf8", stdio: ["ignore", "pipe", "inherit"] },
    ),
  );
  if (status.selected.engine !== "llama-server") {
    console.error(`run-tests: no llama-server to test against (${status.selected.reason});`);
    console.error("run-tests: build one with: npx rolemesh engine build");
    process.exit(1);
  }
  console.log(`run-tests: against ${status.selected.bin} (${status.selected.version})`);
  return {
    LLAMA_SERVER_BIN: status.selected.bin,
    ROLEMESH_TEST_MODEL: resolve("../shared/models/stories260K.gguf"),
  };
}

const args = process.argv.slice(2);
const real = args.includes("--real");
const filter = args.filter((arg) => arg !== "--real");
const files = (real ? ["test"] : ["src", "test"])
  .flatMap(findTests)
  .filter((file) => filter.length === 0 || filter.some((f) => file.includes(f)))
  .sort();
if (files.length === 0) {
  console.error("run-tests: no test files found");
  process.exit(1);
}
// One file at a time: integration tests start servers, and inference engines must never overlap
// on a 2-core machine (ggml busy-waits).
const result = spawnSync(
  process.execPath,
  ["--import", "tsx", "--test", "--test-concurrency=1", "--test-reporter=spec", ...files],
  { stdio: "inherit", env: { ...process.env, ...(real ? realEngineEnv() : {}) } },
);
process.exit(result.status ?? 1);
