import { execFile } from "node:child_process";
import { MIB } from "../../core/units.js";

/** What a device tool printed, or why it could not be used. */
export type ToolResult =
  | { ok: true; stdout: string; stderr: string }
  | { ok: false; reason: string; stdout: string; stderr: string };

/**
 * Runs a vendor tool (nvidia-smi, rocm-smi, …) with a deadline. Never throws: a missing tool,
 * a non-zero exit or a hang is an answer the backend turns into one log line and an empty or
 * partial result.
 */
export function runTool(
  command: string,
  args: readonly string[],
  timeoutMs = 10_000,
): Promise<ToolResult> {
  return new Promise((resolve) => {
    execFile(
      command,
      args,
      { timeout: timeoutMs, maxBuffer: 16 * MIB, encoding: "utf8", killSignal: "SIGKILL" },
      (error, stdout, stderr) => {
        if (!error) return resolve({ ok: true, stdout, stderr });
        const code = (error as NodeJS.ErrnoException).code;
        const reason =
          code === "ENOENT"
            ? `${command} not found`
            : error.killed
              ? `${command} did not answer within ${timeoutMs} ms`
              : `${command} exited with ${typeof code === "number" ? `code ${code}` : String(code ?? error.message)}${
                  stderr.trim() ? `: ${stderr.trim().split("\n")[0]}` : ""
                }`;
        resolve({ ok: false, reason, stdout, stderr });
      },
    );
  });
}
