import { availableParallelism } from "node:os";
import { Command, InvalidArgumentError, Option } from "commander";
import { selectDevices } from "../agent/devices/select-backend.js";
import { runTool } from "../agent/devices/run-tool.js";
import { detectBackend } from "../agent/engines/build/build-tools.js";
import {
  buildEngine,
  EngineBuildError,
  parseVersion,
} from "../agent/engines/build/engine-build.js";
import type { BuildBackend, EngineBuild } from "../agent/engines/build/engine-cache.js";
import { BUILD_BACKENDS, engineCacheDir, listBuilds } from "../agent/engines/build/engine-cache.js";
import { findLlamaCppSource } from "../agent/engines/build/llama-cpp-source.js";
import { chooseEngine } from "../agent/engines/select-engine.js";
import type { EngineChoice } from "../agent/engines/select-engine.js";
import { createLogger } from "../core/logger.js";
import { readConfig } from "./config-files.js";
import { CliExit, EXIT } from "./exit-codes.js";
import { ProgressLine } from "./progress-line.js";
import { textTable } from "./text-table.js";

/** `rolemesh engine build` and `rolemesh engine status` (SPEC §1, §6.1). */
export function engineCommand(): Command {
  const engine = new Command("engine").description(
    "build llama.cpp's llama-server and rpc-server, and show which engine the agent uses",
  );
  engine
    .command("build")
    .description(
      "build llama-server and rpc-server from the llama.cpp source node-llama-cpp ships, into the cache",
    )
    .addOption(
      new Option(
        "--backend <backend>",
        "what to build for (default: cuda with nvcc, vulkan with its SDK, else cpu)",
      ).choices(BUILD_BACKENDS),
    )
    .option("--jobs <n>", "parallel compile jobs (default: every core)", positiveInteger)
    .action(async (options: { backend?: BuildBackend; jobs?: number }) => {
      await build(options.backend ?? detectBackend(), options.jobs ?? availableParallelism());
    });
  engine
    .command("status")
    .description("show the llama.cpp builds in the cache and which engine the agent will use")
    .option("-c, --config <file>", "the agent config to decide for (default: an agent's defaults)")
    .option("--json", "print the status as JSON")
    .action(async (options: { config?: string; json?: boolean }) => {
      const status = await engineStatus(options.config);
      console.log(options.json ? JSON.stringify(status, null, 2) : formatStatus(status));
    });
  return engine;
}

function positiveInteger(value: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 1) throw new InvalidArgumentError("expected a whole number ≥ 1");
  return n;
}

async function build(backend: BuildBackend, jobs: number): Promise<void> {
  const source = await findLlamaCppSource();
  const progress = new ProgressLine();
  const cancel = new AbortController();
  const onSignal = () => cancel.abort();
  process.once("SIGINT", onSignal);
  process.once("SIGTERM", onSignal);
  console.error(
    `llama.cpp ${source.commit.slice(0, 12)} (${source.tag}, from node-llama-cpp ${source.nodeLlamaCppVersion}) for ${backend}, ${jobs} jobs`,
  );
  try {
    const { build: done, reused } = await buildEngine({
      source,
      backend,
      jobs,
      signal: cancel.signal,
      onProgress: (step) => progress.update(step),
    });
    progress.done();
    console.log(
      textTable(
        ["program", "path"],
        [
          ["llama-server", done.llamaServer],
          ["rpc-server", done.rpcServer],
        ],
      ),
    );
    console.error(
      reused
        ? `already built (${done.version}); nothing to do`
        : `built llama.cpp ${done.version} in ${done.build_seconds} s`,
    );
  } catch (err) {
    progress.done();
    if (!(err instanceof EngineBuildError)) throw err;
    throw new CliExit(
      err.code === "cancelled" ? 130 : EXIT.failure,
      `rolemesh engine build: ${err.message}`,
    );
  } finally {
    process.off("SIGINT", onSignal);
    process.off("SIGTERM", onSignal);
  }
}

/** What `rolemesh engine status --json` prints. */
export interface EngineStatus {
  /** The engine an agent with this config would run, and how it was found. */
  selected:
    | { engine: "llama-server"; bin: string; found: string; version: string }
    | { engine: "embedded"; reason: string };
  /** The device backend the choice was made for. */
  device_backend: string;
  /** The llama.cpp source node-llama-cpp carries, when it can be read. */
  source: { commit: string; tag: string; node_llama_cpp: string; bundle: string } | null;
  cache_dir: string;
  builds: (Omit<EngineBuild, "llamaServer" | "rpcServer"> & {
    llama_server: string;
    rpc_server: string;
  })[];
}

const FOUND: Record<Extract<EngineChoice, { engine: "llama-server" }>["found"], string> = {
  llama_server_bin: "set by llama_server_bin",
  PATH: "found on PATH",
  "engine build": "built by rolemesh engine build",
};

async function engineStatus(configFile: string | undefined): Promise<EngineStatus> {
  const config = readConfig("agent", configFile);
  const { backend } = await selectDevices(config, createLogger("silent"));
  const cacheDir = engineCacheDir();
  const choice = await chooseEngine(config, backend.name, cacheDir);
  const source = await findLlamaCppSource().catch(() => null);
  return {
    selected:
      choice.engine === "llama-server"
        ? {
            engine: choice.engine,
            bin: choice.bin,
            found: FOUND[choice.found],
            version: await programVersion(choice.bin),
          }
        : choice,
    device_backend: backend.name,
    source: source && {
      commit: source.commit,
      tag: source.tag,
      node_llama_cpp: source.nodeLlamaCppVersion,
      bundle: source.bundle,
    },
    cache_dir: cacheDir,
    builds: (await listBuilds(cacheDir)).map(({ llamaServer, rpcServer, ...build }) => ({
      ...build,
      llama_server: llamaServer,
      rpc_server: rpcServer,
    })),
  };
}

/** The version llama-server prints (on stderr), or why it could not. */
async function programVersion(bin: string): Promise<string> {
  const answer = await runTool(bin, ["--version"]);
  const lines = `${answer.stdout}\n${answer.stderr}`.split("\n");
  return parseVersion(lines) ?? (answer.ok ? "version unknown" : answer.reason);
}

function formatStatus(status: EngineStatus): string {
  const { selected, source } = status;
  const lines = [
    selected.engine === "llama-server"
      ? `the agent will use llama-server ${selected.bin} (${selected.found}; version ${selected.version})`
      : `the agent will use the embedded engine (${selected.reason})`,
    source
      ? `llama.cpp in node-llama-cpp ${source.node_llama_cpp}: ${source.commit.slice(0, 12)} (${source.tag})`
      : "the installed node-llama-cpp carries no llama.cpp source",
    `builds in ${status.cache_dir}:`,
  ];
  if (status.builds.length === 0) {
    lines.push("  none; run: rolemesh engine build");
  } else {
    const rows = status.builds.map((build) => [
      build.commit.slice(0, 12),
      build.backend,
      build.version,
      build.built_at.replace("T", " ").slice(0, 16),
      build.commit === source?.commit ? "current" : "older source",
    ]);
    const table = textTable(["commit", "backend", "version", "built", ""], rows);
    lines.push(...table.split("\n").map((line) => `  ${line}`));
  }
  return lines.join("\n");
}
