import type { AgentConfig } from "../config/agent-config.js";
import { findExecutable } from "../../core/find-executable.js";
import { EmbeddedEngine } from "./embedded-engine.js";
import type { Engine } from "./engine.js";
import { LlamaServerEngine } from "./llama-server-engine.js";
import type { EngineBuild } from "./build/engine-cache.js";
import { buildFor, engineCacheDir } from "./build/engine-cache.js";

/** The name llama_server_bin has when the config does not set it. */
const DEFAULT_LLAMA_SERVER_BIN = "llama-server";

/** Which engine an agent runs, and why: what `rolemesh engine status` shows. */
export type EngineChoice =
  | {
      engine: "llama-server";
      bin: string;
      /** How the binary was found. */
      found: "llama_server_bin" | "PATH" | "engine build";
      /** The cached build it comes from, when found there. */
      build?: EngineBuild;
    }
  | { engine: "embedded"; reason: string };

/**
 * The engine the config asks for (SPEC §6): `llama-server` — `llama_server_bin`, else on PATH,
 * else a build of `rolemesh engine build` for `deviceBackend` — which `engine: llama-server`
 * requires; `embedded`; or `auto`: llama-server when one is found, else the embedded engine.
 */
export async function chooseEngine(
  config: AgentConfig,
  deviceBackend: string,
  cacheDir = engineCacheDir(),
): Promise<EngineChoice> {
  if (config.engine === "embedded") return { engine: "embedded", reason: "engine: embedded" };
  const named = config.llama_server_bin;
  const bin = findExecutable(named);
  if (bin)
    return {
      engine: "llama-server",
      bin,
      found: named.includes("/") ? "llama_server_bin" : "PATH",
    };
  if (named === DEFAULT_LLAMA_SERVER_BIN) {
    const build = await buildFor(deviceBackend, cacheDir);
    if (build)
      return { engine: "llama-server", bin: build.llamaServer, found: "engine build", build };
  }
  const missing =
    `cannot find "${named}" ` +
    (named.includes("/") ? "(no executable file there)" : `on PATH or in ${cacheDir}`);
  if (config.engine === "auto") return { engine: "embedded", reason: missing };
  throw new Error(
    `llama_server_bin: ${missing}; run "rolemesh engine build", install llama.cpp's llama-server ` +
      "and set llama_server_bin to its path, or use engine: embedded",
  );
}

/** The engine of a choice, ready to launch servers. */
export function engineFor(choice: EngineChoice, config: AgentConfig): Engine {
  return choice.engine === "embedded"
    ? new EmbeddedEngine()
    : new LlamaServerEngine({ bin: choice.bin, extraArgs: config.llama_server_args });
}
