/**
 * `buildEngine` with the real tools (git, cmake, a C++ compiler) on a tiny CMake project that
 * has llama.cpp's two targets, bundled the way node-llama-cpp ships llama.cpp: every step of a
 * real build runs, in seconds instead of the quarter of an hour llama.cpp itself takes.
 */
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { existsSync } from "node:fs";
import { mkdir, mkdtemp, readdir, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { buildEngine, EngineBuildError } from "./engine-build.js";
import type { BuildProgress } from "./engine-build.js";
import { buildKey, listBuilds, preferredBuild } from "./engine-cache.js";
import type { EngineBuild } from "./engine-cache.js";
import type { LlamaCppSource } from "./llama-cpp-source.js";
import { bundleHead, findLlamaCppSource } from "./llama-cpp-source.js";

const PROGRAM = (name: string) => `#include <cstdio>
#include <cstring>
int main(int argc, char **argv) {
  if (argc > 1 && std::strcmp(argv[1], "--version") == 0) {
    std::fprintf(stderr, "version: 9.9.9 (build 1, commit ${name})\\nbuilt with a test\\n");
    return 0;
  }
  return 0;
}
`;

const CMAKE_LISTS = `cmake_minimum_required(VERSION 3.14)
project(tiny CXX)
set(CMAKE_RUNTIME_OUTPUT_DIRECTORY \${CMAKE_BINARY_DIR}/bin)
add_executable(llama-server server.cpp)
add_executable(ggml-rpc-server rpc.cpp)
add_executable(not-wanted server.cpp)
`;

let root: string;
let source: LlamaCppSource;

async function tinySource(dir: string): Promise<LlamaCppSource> {
  const repo = join(dir, "repo");
  await mkdir(repo, { recursive: true });
  await writeFile(join(repo, "CMakeLists.txt"), CMAKE_LISTS);
  await writeFile(join(repo, "server.cpp"), PROGRAM("tiny"));
  await writeFile(join(repo, "rpc.cpp"), PROGRAM("rpc"));
  const git = (...args: string[]) =>
    execFileSync("git", ["-C", repo, "-c", "user.name=t", "-c", "user.email=t@t", ...args], {
      stdio: "ignore",
    });
  git("init", "--quiet");
  git("add", ".");
  git("commit", "--quiet", "-m", "tiny");
  const bundle = join(dir, "gitRelease.bundle");
  git("bundle", "create", bundle, "HEAD");
  return { bundle, commit: await bundleHead(bundle), tag: "v-test", nodeLlamaCppVersion: "0.0.0" };
}

/** Pids of processes whose command line mentions `text`. */
async function processesMentioning(text: string): Promise<number[]> {
  const pids: number[] = [];
  for (const name of await readdir("/proc")) {
    if (!/^\d+$/.test(name)) continue;
    const cmdline = await readFile(`/proc/${name}/cmdline`, "utf8").catch(() => "");
    if (cmdline.includes(text)) pids.push(Number(name));
  }
  return pids;
}

describe("engine build", () => {
  before(async () => {
    root = await mkdtemp(join(tmpdir(), "rolemesh-build-"));
    source = await tinySource(root);
  });
  after(() => rm(root, { recursive: true, force: true }));

  test("builds both programs through every phase into the cache, then reuses them", async () => {
    const cacheDir = join(root, "cache");
    const seen: BuildProgress[] = [];
    const { build, reused } = await buildEngine({
      source,
      backend: "cpu",
      jobs: 2,
      cacheDir,
      onProgress: (progress) => seen.push(progress),
    });
    assert.equal(reused, false);
    const phases = [...new Set(seen.map((progress) => progress.phase))];
    for (const phase of [
      "checking",
      "cloning",
      "configuring",
      "compiling",
      "installing",
      "verifying",
      "done",
    ]) {
      assert.ok(
        phases.includes(phase as BuildProgress["phase"]),
        `phase ${phase} in ${phases.join(",")}`,
      );
    }
    assert.ok(seen.some((progress) => progress.percent === 100 && progress.phase !== "done"));
    assert.equal(build.dir, join(cacheDir, buildKey(source.commit, "cpu")));
    assert.equal(build.version, "9.9.9 (build 1, commit tiny)");
    assert.equal(build.commit, source.commit);
    assert.match(
      execFileSync(build.rpcServer, ["--version"], { stdio: "pipe", encoding: "utf8" }),
      /^$/,
    );
    assert.ok(!existsSync(join(build.dir, "src")), "the clone is removed once installed");
    assert.ok(!existsSync(join(build.dir, "build")), "so are the objects");
    assert.ok(existsSync(join(build.dir, "build.log")));
    assert.deepEqual(
      (await listBuilds(cacheDir)).map((listed) => listed.dir),
      [build.dir],
    );

    const again: BuildProgress[] = [];
    const second = await buildEngine({
      source,
      backend: "cpu",
      cacheDir,
      onProgress: (p) => again.push(p),
    });
    assert.equal(second.reused, true);
    assert.deepEqual(again, [], "a finished build is not checked, cloned or compiled again");
  });

  test("missing tools fail at once, naming the packages to install", async () => {
    const empty = await mkdtemp(join(root, "no-tools-"));
    await assert.rejects(
      buildEngine({ source, backend: "cpu", cacheDir: join(root, "cache-none"), pathEnv: empty }),
      (err: unknown) => {
        assert.ok(err instanceof EngineBuildError);
        assert.equal(err.code, "missing_tool");
        assert.match(
          err.message,
          /cmake \(Debian\/Ubuntu: apt-get install cmake; Fedora: dnf install cmake; macOS: brew install cmake\)/,
        );
        assert.match(
          err.message,
          /a C\+\+ compiler \(Debian\/Ubuntu: apt-get install g\+\+; Fedora: dnf install gcc-c\+\+; macOS: xcode-select --install\)/,
        );
        assert.match(err.message, /git \(/);
        return true;
      },
    );
  });

  test("a second build of the same folder while one runs is refused; a stop kills its tools", async () => {
    const cacheDir = join(root, "cache-busy");
    const controller = new AbortController();
    let second: Promise<unknown> | undefined;
    const first = buildEngine({
      source,
      backend: "cpu",
      cacheDir,
      signal: controller.signal,
      onLine: () => {
        // The first tool is running, so the lock is held; once the second is refused, stop.
        second ??= buildEngine({ source, backend: "cpu", cacheDir })
          .then(
            () => "built",
            (err: unknown) => err,
          )
          .finally(() => controller.abort());
      },
    });
    await assert.rejects(
      first,
      (err: unknown) => err instanceof EngineBuildError && err.code === "cancelled",
    );
    assert.deepEqual(
      await processesMentioning(cacheDir),
      [],
      "no tool of the stopped build runs on",
    );
    const refused = await second;
    assert.ok(refused instanceof EngineBuildError && refused.code === "busy", String(refused));
    const resumed = await buildEngine({ source, backend: "cpu", cacheDir });
    assert.equal(resumed.reused, false, "a stopped build leaves no finished build behind");
    assert.equal(resumed.build.version, "9.9.9 (build 1, commit tiny)");
  });
});

test("the llama.cpp source of the installed node-llama-cpp is found with its commit", async () => {
  const found = await findLlamaCppSource();
  assert.match(found.commit, /^[0-9a-f]{40}$/);
  assert.ok(existsSync(found.bundle));
  assert.notEqual(found.tag, "unknown");
});

test("an agent prefers a build for its devices, then a CPU build; the current source first", () => {
  const build = (backend: EngineBuild["backend"], commit: string): EngineBuild => ({
    commit,
    tag: "",
    backend,
    version: "",
    node_llama_cpp: "",
    cmake_args: [],
    built_at: "",
    build_seconds: 0,
    dir: `${commit}-${backend}`,
    llamaServer: "",
    rpcServer: "",
  });
  // Newest first, as listBuilds gives them.
  const builds = [
    build("cpu", "new"),
    build("cuda", "new"),
    build("cuda", "old"),
    build("cpu", "old"),
  ];
  assert.equal(preferredBuild(builds, "cuda", "new")?.dir, "new-cuda");
  assert.equal(preferredBuild(builds, "cuda", "other")?.dir, "new-cuda");
  assert.equal(preferredBuild(builds, "cpu", "old")?.dir, "old-cpu");
  assert.equal(
    preferredBuild(builds, "vulkan", "new")?.dir,
    "new-cpu",
    "never another GPU vendor's",
  );
  assert.equal(preferredBuild([build("cuda", "new")], "cpu", "new"), undefined);
});
