import { createWriteStream, existsSync } from "node:fs";
import type { WriteStream } from "node:fs";
import { chmod, copyFile, mkdir, open, readFile, rename, rm } from "node:fs/promises";
import { availableParallelism } from "node:os";
import { join } from "node:path";
import { writeJsonFile } from "../../../core/json-file.js";
import { findExecutable } from "../../../core/find-executable.js";
import { ManagedProcess } from "../../../core/process/managed-process.js";
import { describeMissing, locateBackendCompiler, missingTools } from "./build-tools.js";
import { parseCompileStep } from "./cmake-progress.js";
import type { BuildBackend, BuildManifest, EngineBuild } from "./engine-cache.js";
import { buildKey, buildPrograms, engineCacheDir, MANIFEST, readBuild } from "./engine-cache.js";
import type { LlamaCppSource } from "./llama-cpp-source.js";

export type BuildPhase =
  | "checking"
  | "cloning"
  | "configuring"
  | "compiling"
  | "linking"
  | "installing"
  | "verifying"
  | "done";

export interface BuildProgress {
  phase: BuildPhase;
  /** How far the compile is (cmake's own percent); null outside compiling and linking. */
  percent: number | null;
  /** The file being compiled or the program being linked, when known. */
  detail: string;
}

export interface EngineBuildOptions {
  /** The llama.cpp source to build (see `findLlamaCppSource`). */
  source: LlamaCppSource;
  backend: BuildBackend;
  /** Parallel compile jobs; default: every core. */
  jobs?: number;
  /** The cache root; default `engineCacheDir()`. */
  cacheDir?: string;
  /** Each phase, and each step of the compile. */
  onProgress?: (progress: BuildProgress) => void;
  /** Every line the tools print (also written to the build's `build.log`). */
  onLine?: (line: string) => void;
  /** Stops the build: its tools are killed and the call fails with code `cancelled`. */
  signal?: AbortSignal;
  /** The PATH tools are found on and run with; default the process's. */
  pathEnv?: string;
}

export interface EngineBuildResult {
  build: EngineBuild;
  /** True when a finished build was found and nothing was built. */
  reused: boolean;
}

export type EngineBuildErrorCode = "missing_tool" | "busy" | "failed" | "cancelled";

/** A build that could not run or did not finish; `code` says which, for callers to branch on. */
export class EngineBuildError extends Error {
  override readonly name = "EngineBuildError";
  readonly code: EngineBuildErrorCode;

  constructor(code: EngineBuildErrorCode, message: string, options: { cause?: unknown } = {}) {
    super(message, options);
    this.code = code;
  }
}

/** The targets built: the server and the RPC worker (named `ggml-rpc-server` in this tree). */
const TARGETS = [
  { target: "llama-server", program: "llamaServer" },
  { target: "ggml-rpc-server", program: "rpcServer" },
] as const;

/**
 * Static programs (they are copied out of the build tree), no network at build time (no curl,
 * no prebuilt web UI download), no OpenSSL: managed servers only ever listen on loopback.
 */
const COMMON_CMAKE_ARGS = [
  "-DCMAKE_BUILD_TYPE=Release",
  "-DGGML_RPC=ON",
  "-DLLAMA_CURL=OFF",
  "-DLLAMA_OPENSSL=OFF",
  "-DBUILD_SHARED_LIBS=OFF",
  "-DLLAMA_BUILD_TESTS=OFF",
  "-DLLAMA_BUILD_EXAMPLES=OFF",
  "-DLLAMA_BUILD_UI=OFF",
  "-DLLAMA_USE_PREBUILT_UI=OFF",
];

function backendCmakeArgs(backend: BuildBackend, pathEnv?: string): string[] {
  switch (backend) {
    case "cpu":
      return process.platform === "darwin" ? ["-DGGML_METAL=OFF"] : [];
    case "cuda": {
      const nvcc = locateBackendCompiler("cuda", pathEnv);
      return ["-DGGML_CUDA=ON", ...(nvcc ? [`-DCMAKE_CUDA_COMPILER=${nvcc}`] : [])];
    }
    case "vulkan":
      return ["-DGGML_VULKAN=ON"];
    case "rocm":
      return ["-DGGML_HIP=ON"];
    case "metal":
      return ["-DGGML_METAL=ON"];
  }
}

/**
 * Builds llama-server and rpc-server from `source` for `backend` into the cache (SPEC §6.1), or
 * returns the finished build already there. An interrupted build resumes: the clone and the
 * compiled objects are kept until the programs are installed, and only then removed.
 */
export async function buildEngine(options: EngineBuildOptions): Promise<EngineBuildResult> {
  const { source, backend } = options;
  const dir = join(options.cacheDir ?? engineCacheDir(), buildKey(source.commit, backend));
  const existing = await readBuild(dir);
  if (existing?.commit === source.commit) return { build: existing, reused: true };

  const progress = (phase: BuildPhase, percent: number | null = null, detail = "") =>
    options.onProgress?.({ phase, percent, detail });
  progress("checking");
  const missing = missingTools(backend, options.pathEnv);
  if (missing.length > 0) {
    throw new EngineBuildError(
      "missing_tool",
      `cannot build llama.cpp for ${backend}; install what is missing:\n${describeMissing(missing)}`,
    );
  }
  await mkdir(dir, { recursive: true });
  const release = await lock(dir);
  const log = createWriteStream(join(dir, "build.log"), { flags: "a" });
  const steps = new StepRunner(log, options);
  try {
    if (existing) await rm(join(dir, MANIFEST), { force: true });
    return { build: await runBuild(dir, options, steps, progress), reused: false };
  } finally {
    await new Promise((resolve) => log.end(resolve));
    await release();
  }
}

async function runBuild(
  dir: string,
  options: EngineBuildOptions,
  steps: StepRunner,
  progress: (phase: BuildPhase, percent?: number | null, detail?: string) => void,
): Promise<EngineBuild> {
  const { source, backend } = options;
  const started = Date.now();
  const src = join(dir, "src");
  const build = join(dir, "build");
  if (!existsSync(src)) {
    // Cloned under another name and renamed, so a `src` folder is always a whole clone.
    progress("cloning");
    await rm(src, { recursive: true, force: true });
    await rm(`${src}.partial`, { recursive: true, force: true });
    await steps.run("git", ["clone", "--quiet", source.bundle, `${src}.partial`]);
    await steps.run("git", [
      "-C",
      `${src}.partial`,
      "checkout",
      "--quiet",
      "--detach",
      source.commit,
    ]);
    await rename(`${src}.partial`, src);
  }

  progress("configuring");
  const cmakeArgs = [...COMMON_CMAKE_ARGS, ...backendCmakeArgs(backend, options.pathEnv)];
  await steps.run("cmake", ["-S", src, "-B", build, ...cmakeArgs]);

  progress("compiling", 0);
  const jobs = options.jobs ?? availableParallelism();
  let percent = 0;
  await steps.run(
    "cmake",
    [
      "--build",
      build,
      "--config",
      "Release",
      "-j",
      String(jobs),
      "--target",
      ...TARGETS.map((t) => t.target),
    ],
    (line) => {
      const step = parseCompileStep(line);
      if (!step) return;
      // Each target counts its own percent; the bar only moves forward.
      percent = Math.max(percent, step.percent);
      progress(step.phase, percent, step.detail);
    },
  );

  progress("installing");
  const programs = buildPrograms(dir);
  await mkdir(join(dir, "bin"), { recursive: true });
  for (const { target, program } of TARGETS) {
    const built = [join(build, "bin", target), join(build, "bin", "Release", target)].find(
      (candidate) => findExecutable(candidate),
    );
    if (!built)
      throw new EngineBuildError("failed", `the build produced no ${target} in ${build}/bin`);
    const installed = programs[program];
    await copyFile(built, `${installed}.partial`);
    await chmod(`${installed}.partial`, 0o755);
    await rename(`${installed}.partial`, installed);
  }

  progress("verifying");
  const versionLines = await steps.run(programs.llamaServer, ["--version"]);
  const version = parseVersion(versionLines) ?? "unknown";
  const manifest: BuildManifest = {
    commit: source.commit,
    tag: source.tag,
    backend,
    version,
    node_llama_cpp: source.nodeLlamaCppVersion,
    cmake_args: cmakeArgs,
    built_at: new Date().toISOString(),
    build_seconds: Math.round((Date.now() - started) / 1000),
  };
  await writeJsonFile(join(dir, MANIFEST), manifest);
  // The programs are static and installed: the source and objects only take room now.
  await rm(src, { recursive: true, force: true });
  await rm(build, { recursive: true, force: true });
  progress("done", 100);
  return { ...manifest, dir, ...programs };
}

/** Runs the build's tools one after another, each in its own process group. */
class StepRunner {
  readonly #log: WriteStream;
  readonly #options: EngineBuildOptions;

  constructor(log: WriteStream, options: EngineBuildOptions) {
    this.#log = log;
    this.#options = options;
  }

  /** Runs a command to its end; its last lines are returned, and quoted if it fails. */
  async run(command: string, args: string[], onLine?: (line: string) => void): Promise<string[]> {
    const { signal, pathEnv } = this.#options;
    if (signal?.aborted) throw cancelled();
    this.#log.write(`$ ${command} ${args.join(" ")}\n`);
    const tail: string[] = [];
    const child = new ManagedProcess(
      { command, args, env: pathEnv === undefined ? {} : { PATH: pathEnv } },
      (_stream, line) => {
        this.#log.write(`${line}\n`);
        tail.push(line);
        if (tail.length > TAIL_LINES) tail.shift();
        this.#options.onLine?.(line);
        onLine?.(line);
      },
    );
    const stop = () => void child.stop(5_000);
    signal?.addEventListener("abort", stop, { once: true });
    try {
      const status = await child.exited;
      if (signal?.aborted) throw cancelled();
      if (status.code !== 0) {
        const how = status.signal ? `was killed by ${status.signal}` : `exited with ${status.code}`;
        throw new EngineBuildError(
          "failed",
          `${command} ${args[0] ?? ""} ${how}; its last lines:\n${tail.join("\n")}\n(whole log: ${this.#log.path as string})`,
        );
      }
      return tail;
    } finally {
      signal?.removeEventListener("abort", stop);
    }
  }
}

const TAIL_LINES = 30;

/** `0.4.0-dev (build 1, commit 80fb11a)` from llama-server's `version: …` line. */
export function parseVersion(lines: readonly string[]): string | undefined {
  const line = lines.find((candidate) => candidate.startsWith("version:"));
  return line?.slice("version:".length).trim();
}

function cancelled(): EngineBuildError {
  return new EngineBuildError("cancelled", "the build was cancelled");
}

/**
 * Holds the build folder for this process: a second build of the same commit and backend
 * fails at once instead of compiling into the same tree. A lock whose process is gone is taken.
 */
async function lock(dir: string): Promise<() => Promise<void>> {
  const file = join(dir, "build.lock");
  for (let attempt = 0; ; attempt++) {
    try {
      const handle = await open(file, "wx");
      await handle.writeFile(String(process.pid));
      await handle.close();
      return () => rm(file, { force: true });
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== "EEXIST" || attempt > 0) throw err;
    }
    const holder = Number(await readFile(file, "utf8").catch(() => ""));
    if (holder > 0 && isAlive(holder)) {
      throw new EngineBuildError(
        "busy",
        `another build (pid ${holder}) is building ${dir}; wait for it or stop it`,
      );
    }
    await rm(file, { force: true });
  }
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === "EPERM";
  }
}
