import { readdir } from "node:fs/promises";
import { homedir } from "node:os";
import { join } from "node:path";
import { readJsonFile } from "../../../core/json-file.js";
import { findExecutable } from "../../../core/find-executable.js";
import { findLlamaCppSource } from "./llama-cpp-source.js";

/** The llama.cpp backends `rolemesh engine build` can build for (SPEC §6.1). */
export const BUILD_BACKENDS = ["cpu", "cuda", "vulkan", "rocm", "metal"] as const;
export type BuildBackend = (typeof BUILD_BACKENDS)[number];

/** The file that marks a finished build; a folder without it is an interrupted one. */
export const MANIFEST = "build.json";

/** What `build.json` records about one finished build. */
export interface BuildManifest {
  /** The llama.cpp commit built. */
  commit: string;
  /** Its release tag, as node-llama-cpp records it. */
  tag: string;
  backend: BuildBackend;
  /** What `llama-server --version` says, e.g. `0.4.0-dev (build 1, commit 80fb11a)`. */
  version: string;
  /** The node-llama-cpp version whose source was built. */
  node_llama_cpp: string;
  /** The cmake configure arguments used. */
  cmake_args: string[];
  built_at: string;
  /** How long configuring, compiling and installing took. */
  build_seconds: number;
}

/** A finished build in the cache, with the paths of its programs. */
export interface EngineBuild extends BuildManifest {
  /** The build's folder: `<cache>/llama.cpp/<commit>-<backend>`. */
  dir: string;
  llamaServer: string;
  rpcServer: string;
}

/**
 * Where builds live: `$ROLEMESH_CACHE_DIR/llama.cpp`, else `$XDG_CACHE_HOME/rolemesh/llama.cpp`,
 * else `~/.cache/rolemesh/llama.cpp`. Outside any clone, so every checkout reuses one build.
 */
export function engineCacheDir(env: NodeJS.ProcessEnv = process.env): string {
  const root =
    env.ROLEMESH_CACHE_DIR || join(env.XDG_CACHE_HOME || join(homedir(), ".cache"), "rolemesh");
  return join(root, "llama.cpp");
}

/** The folder name of a build: the commit's first 12 hex digits and the backend. */
export function buildKey(commit: string, backend: BuildBackend): string {
  return `${commit.slice(0, 12)}-${backend}`;
}

/** The programs of a build folder, whether or not they exist yet. */
export function buildPrograms(dir: string): { llamaServer: string; rpcServer: string } {
  return {
    llamaServer: join(dir, "bin", "llama-server"),
    rpcServer: join(dir, "bin", "rpc-server"),
  };
}

/** Reads one build folder; undefined unless it holds a finished build with its programs. */
export async function readBuild(dir: string): Promise<EngineBuild | undefined> {
  const manifest = await readJsonFile<BuildManifest | undefined>(
    join(dir, MANIFEST),
    undefined,
  ).catch(() => undefined);
  if (!manifest || !BUILD_BACKENDS.includes(manifest.backend)) return undefined;
  const programs = buildPrograms(dir);
  if (!findExecutable(programs.llamaServer) || !findExecutable(programs.rpcServer))
    return undefined;
  return { ...manifest, dir, ...programs };
}

/** Every finished build in the cache, newest first. */
export async function listBuilds(cacheDir = engineCacheDir()): Promise<EngineBuild[]> {
  let names: string[];
  try {
    names = await readdir(cacheDir);
  } catch {
    return [];
  }
  const builds = await Promise.all(names.map((name) => readBuild(join(cacheDir, name))));
  return builds
    .filter((build): build is EngineBuild => build !== undefined)
    .sort((a, b) => b.built_at.localeCompare(a.built_at));
}

/**
 * The build an agent should run: one for its device backend if there is one, else a CPU build
 * (a GPU build needs its vendor's runtime, so it is never used for another backend); among
 * those, the commit node-llama-cpp carries first, then the newest.
 */
export function preferredBuild(
  builds: readonly EngineBuild[],
  deviceBackend: string,
  currentCommit?: string,
): EngineBuild | undefined {
  const rank = (build: EngineBuild) =>
    (build.backend === deviceBackend ? 0 : 2) + (build.commit === currentCommit ? 0 : 1);
  return builds
    .filter((build) => build.backend === deviceBackend || build.backend === "cpu")
    .sort((a, b) => rank(a) - rank(b))[0];
}

/** The build an agent whose devices are `deviceBackend` runs (see `preferredBuild`), if any. */
export async function buildFor(
  deviceBackend: string,
  cacheDir = engineCacheDir(),
): Promise<EngineBuild | undefined> {
  const current = await findLlamaCppSource().then(
    (source) => source.commit,
    () => undefined,
  );
  return preferredBuild(await listBuilds(cacheDir), deviceBackend, current);
}
