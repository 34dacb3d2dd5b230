/**
 * `rolemesh engine status` and `rolemesh engine build` as a user runs them, against an engine
 * cache of the test's own (ROLEMESH_CACHE_DIR). The compile itself is covered by
 * src/agent/engines/build/engine-build.test.ts; CI runs the real build before the tests.
 */
import assert from "node:assert/strict";
import { chmod, mkdir, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { test } from "node:test";
import { findLlamaCppSource } from "../src/agent/engines/build/llama-cpp-source.js";
import type { EngineStatus } from "../src/cli/engine-command.js";
import { runCli, tempDir } from "./helpers/launcher.js";

/** A finished build in `cacheDir` whose llama-server prints `version` as the real one does. */
async function cachedBuild(cacheDir: string, commit: string, backend = "cpu"): Promise<string> {
  const dir = join(cacheDir, "llama.cpp", `${commit.slice(0, 12)}-${backend}`);
  await mkdir(join(dir, "bin"), { recursive: true });
  for (const program of ["llama-server", "rpc-server"]) {
    const file = join(dir, "bin", program);
    await writeFile(
      file,
      `#!/bin/sh\necho "version: 0.0.1 (build 7, commit ${commit.slice(0, 7)})" >&2\n`,
    );
    await chmod(file, 0o755);
  }
  await writeFile(
    join(dir, "build.json"),
    JSON.stringify({
      commit,
      tag: "v-test",
      backend,
      version: `0.0.1 (build 7, commit ${commit.slice(0, 7)})`,
      node_llama_cpp: "0.0.0",
      cmake_args: [],
      built_at: "2026-01-01T00:00:00.000Z",
      build_seconds: 1,
    }),
  );
  return join(dir, "bin", "llama-server");
}

/** No llama-server on PATH: only node's own folder, which has none. */
const PATH_WITHOUT_LLAMA = { PATH: "/nonexistent" };

test("engine status: the embedded engine while the cache is empty, the cached llama-server once built", async () => {
  const cache = await tempDir();
  const env = { ...PATH_WITHOUT_LLAMA, ROLEMESH_CACHE_DIR: cache };
  const empty = await runCli(["engine", "status", "--json"], env);
  assert.equal(empty.code, 0, empty.stderr);
  const before = JSON.parse(empty.stdout) as EngineStatus;
  assert.equal(before.selected.engine, "embedded");
  assert.deepEqual(before.builds, []);
  assert.equal(before.cache_dir, join(cache, "llama.cpp"));

  const { commit } = await findLlamaCppSource();
  const bin = await cachedBuild(cache, commit);
  const built = await runCli(["engine", "status", "--json"], env);
  const after = JSON.parse(built.stdout) as EngineStatus;
  assert.deepEqual(after.selected, {
    engine: "llama-server",
    bin,
    found: "built by rolemesh engine build",
    version: `0.0.1 (build 7, commit ${commit.slice(0, 7)})`,
  });
  assert.equal(after.source?.commit, commit);
  assert.equal(after.builds.length, 1);

  const text = await runCli(["engine", "status"], env);
  assert.match(
    text.stdout,
    new RegExp(`the agent will use llama-server ${bin} \\(built by rolemesh engine build`),
  );
  assert.match(text.stdout, /cpu\s+0\.0\.1 \(build 7, commit \w+\)\s+2026-01-01 00:00\s+current/);
});

test("engine status: a CUDA build is not used by an agent on the CPU; an explicit llama_server_bin wins", async () => {
  const cache = await tempDir();
  const { commit } = await findLlamaCppSource();
  await cachedBuild(cache, commit, "cuda");
  const env = { ...PATH_WITHOUT_LLAMA, ROLEMESH_CACHE_DIR: cache };
  const status = JSON.parse(
    (await runCli(["engine", "status", "--json"], env)).stdout,
  ) as EngineStatus;
  assert.equal(status.selected.engine, "embedded");

  const config = join(cache, "agent.yaml");
  const own = await cachedBuild(join(cache, "elsewhere"), commit);
  await writeFile(config, `llama_server_bin: ${own}\n`);
  const chosen = JSON.parse(
    (await runCli(["engine", "status", "--json", "--config", config], env)).stdout,
  ) as EngineStatus;
  assert.equal(chosen.selected.engine, "llama-server");
  assert.equal(
    chosen.selected.engine === "llama-server" && chosen.selected.found,
    "set by llama_server_bin",
  );
});

test("engine build: a finished build is reused at once; missing tools are named with their packages", async () => {
  const cache = await tempDir();
  const { commit } = await findLlamaCppSource();
  const bin = await cachedBuild(cache, commit);
  const reused = await runCli(["engine", "build", "--backend", "cpu"], {
    ROLEMESH_CACHE_DIR: cache,
  });
  assert.equal(reused.code, 0, reused.stderr);
  assert.match(reused.stdout, new RegExp(`llama-server\\s+${bin}`));
  assert.match(reused.stderr, /already built .*; nothing to do/);

  const fresh = await tempDir();
  const missing = await runCli(["engine", "build", "--backend", "cpu"], {
    ...PATH_WITHOUT_LLAMA,
    ROLEMESH_CACHE_DIR: fresh,
  });
  assert.equal(missing.code, 1);
  assert.match(missing.stderr, /cannot build llama\.cpp for cpu; install what is missing:/);
  assert.match(
    missing.stderr,
    /cmake \(Debian\/Ubuntu: apt-get install cmake; Fedora: dnf install cmake/,
  );
  assert.match(missing.stderr, /a C\+\+ compiler \(Debian\/Ubuntu: apt-get install g\+\+/);

  const wrong = await runCli(["engine", "build", "--backend", "cuda-ish"], {
    ROLEMESH_CACHE_DIR: fresh,
  });
  assert.equal(wrong.code, 2);
  assert.match(wrong.stderr, /Allowed choices are cpu, cuda, vulkan, rocm, metal/);
});
