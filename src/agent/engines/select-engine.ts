import type { AgentConfig } from "../agent-config.js";
import { findExecutable } from "../../core/find-executable.js";
import type { Engine } from "./engine.js";
import { LlamaServerEngine } from "./llama-server-engine.js";

/**
 * The engine the config asks for (SPEC §6). Returns null when no model is configured and no
 * engine can be found: such a node still runs, it just has nothing to serve.
 */
export function selectEngine(config: AgentConfig): Engine | null {
  const bin = findExecutable(config.llama_server_bin);
  if (config.engine === "embedded") {
    throw new Error("engine: embedded is not available in this version; use llama-server");
  }
  if (bin) return new LlamaServerEngine({ bin, extraArgs: config.llama_server_args });
  if (config.models.length === 0) return null;
  throw new Error(
    `llama_server_bin: cannot find "${config.llama_server_bin}" ` +
      (config.llama_server_bin.includes("/") ? "(no executable file there)" : "on PATH") +
      "; install llama.cpp's llama-server or set llama_server_bin to its path",
  );
}
