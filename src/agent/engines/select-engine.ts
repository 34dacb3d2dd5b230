import type { AgentConfig } from "../agent-config.js";
import { findExecutable } from "../../core/find-executable.js";
import { EmbeddedEngine } from "./embedded-engine.js";
import type { Engine } from "./engine.js";
import { LlamaServerEngine } from "./llama-server-engine.js";

/**
 * The engine the config asks for (SPEC §6): `llama-server` (which must be found), `embedded`,
 * or `auto` — llama-server when it can be found, else the embedded engine.
 */
export function selectEngine(config: AgentConfig): Engine {
  if (config.engine === "embedded") return new EmbeddedEngine();
  const bin = findExecutable(config.llama_server_bin);
  if (bin) return new LlamaServerEngine({ bin, extraArgs: config.llama_server_args });
  if (config.engine === "auto") return new EmbeddedEngine();
  throw new Error(
    `llama_server_bin: cannot find "${config.llama_server_bin}" ` +
      (config.llama_server_bin.includes("/") ? "(no executable file there)" : "on PATH") +
      "; install llama.cpp's llama-server, set llama_server_bin to its path, or use engine: embedded",
  );
}
