import type { ExitStatus, ManagedProcess } from "../../core/process/managed-process.js";
import type { ServerFailure, ServerInfo, ServerState } from "../../protocol/inventory.js";
import type { CrashBackoff } from "./crash-backoff.js";

/** A supervised process's run, whatever it serves (llama-server, rpc-server). */
export interface SupervisedRun {
  state: ServerState;
  process: ManagedProcess | null;
  port: number | null;
  readyAt: Date | null;
  restarts: number;
  backoff: CrashBackoff;
}

/** What the inventory shows of a supervised process (SPEC §7.1), the model aside. */
export function processInfo(run: SupervisedRun): Omit<ServerInfo, "model_id"> {
  const { state, process, backoff } = run;
  return {
    state,
    pid: process?.pid ?? null,
    port: process ? run.port : null,
    started_at: process?.startedAt.toISOString() ?? null,
    ready_at: state === "ready" ? (run.readyAt?.toISOString() ?? null) : null,
    restarts: run.restarts,
    consecutive_failures: backoff.consecutiveFailures,
    next_attempt_at:
      state === "failed" && backoff.remainingMs() > 0
        ? new Date(backoff.nextAttemptAt).toISOString()
        : null,
  };
}

/**
 * How a supervised process ended, for its failure report: killed by the supervisor itself
 * (`killedBecause` says why), by a signal, or exited.
 */
export function howItEnded(status: ExitStatus, killedBecause: string | null): string {
  if (killedBecause !== null) return `${killedBecause} and was killed`;
  return status.signal ? `was killed by ${status.signal}` : `exited with code ${status.code}`;
}

/** The failure the inventory shows for a process that ended unasked (SPEC §7.1). */
export function failureReport(
  message: string,
  status: ExitStatus,
  stderrTail: string[],
): ServerFailure {
  return {
    message,
    exit_code: status.code,
    signal: status.signal,
    stderr_tail: stderrTail,
    at: new Date().toISOString(),
  };
}
