import { spawn } from "node:child_process";
import type { ChildProcess } from "node:child_process";
import { once } from "node:events";
import { createInterface } from "node:readline";
import { findExecutable } from "../find-executable.js";
import { killGroup } from "./process-group.js";

/** How to start a process: what runs, and how its environment differs from ours. */
export interface ProcessSpec {
  command: string;
  args: string[];
  /** Changes to this process's environment (e.g. pinning variables); `undefined` removes one. */
  env: Record<string, string | undefined>;
}

/** How long `stop` waits for a SIGKILLed process before it stops waiting. */
const KILL_WAIT_MS = 5000;

export interface ExitStatus {
  code: number | null;
  signal: NodeJS.Signals | null;
}

// `setpriv --pdeathsig` makes the kernel signal the server when the agent dies, even by SIGKILL.
const setpriv = process.platform === "linux" ? findExecutable("setpriv") : null;

/**
 * One running child process in its own process group (so stopping it stops whatever it
 * started), with its output split into lines. On Linux it dies with us, even by SIGKILL.
 * It knows nothing of what it runs: inference servers and build tools alike.
 */
export class ManagedProcess {
  readonly pid: number;
  readonly startedAt = new Date();
  /** Settles once the process has exited and its remaining output has been read. */
  readonly exited: Promise<ExitStatus>;
  readonly #child: ChildProcess;

  constructor(spec: ProcessSpec, onLine: (stream: "stdout" | "stderr", line: string) => void) {
    const [command, args] = setpriv
      ? [setpriv, ["--pdeathsig", "SIGTERM", "--", spec.command, ...spec.args]]
      : [spec.command, spec.args];
    this.#child = spawn(command, args, {
      detached: true,
      stdio: ["ignore", "pipe", "pipe"],
      env: withChanges(process.env, spec.env),
    });
    const exit = once(this.#child, "exit").then(([code, signal]) => ({
      code: code as number | null,
      signal: signal as NodeJS.Signals | null,
    }));
    const spawnFailure = once(this.#child, "error").then(([err]) => {
      onLine("stderr", `failed to start ${spec.command}: ${(err as Error).message}`);
      return { code: 127, signal: null } satisfies ExitStatus;
    });
    // Output may still be buffered when "exit" fires; wait for it briefly, not forever
    // (a grandchild that kept the pipes open must not hold the report back).
    const drained = once(this.#child, "close").catch(() => undefined);
    this.exited = Promise.race([exit, spawnFailure]).then(async (status) => {
      await Promise.race([drained, new Promise((resolve) => setTimeout(resolve, 200))]);
      return status;
    });
    this.pid = this.#child.pid ?? -1;
    for (const stream of ["stdout", "stderr"] as const) {
      const source = this.#child[stream];
      if (source)
        createInterface({ input: source, crlfDelay: Infinity }).on("line", (line) =>
          onLine(stream, line),
        );
    }
  }

  /**
   * SIGTERM to the group, SIGKILL after `graceMs`; resolves once the process is gone, or
   * KILL_WAIT_MS after the SIGKILL at the latest (a process stuck in the kernel, in
   * uninterruptible sleep, outlives even that; the caller must not hang with it).
   */
  async stop(graceMs: number): Promise<ExitStatus> {
    if (this.pid > 0) killGroup(this.pid, "SIGTERM");
    let giveUp: NodeJS.Timeout | undefined;
    const timer = setTimeout(() => {
      if (this.pid > 0) killGroup(this.pid, "SIGKILL");
    }, graceMs);
    try {
      return await Promise.race([
        this.exited,
        new Promise<ExitStatus>((resolve) => {
          giveUp = setTimeout(
            () => resolve({ code: null, signal: "SIGKILL" }),
            graceMs + KILL_WAIT_MS,
          );
        }),
      ]);
    } finally {
      clearTimeout(timer);
      clearTimeout(giveUp);
    }
  }
}

function withChanges(
  base: NodeJS.ProcessEnv,
  changes: Record<string, string | undefined>,
): NodeJS.ProcessEnv {
  const env = { ...base, ...changes };
  for (const [name, value] of Object.entries(changes)) if (value === undefined) delete env[name];
  return env;
}
