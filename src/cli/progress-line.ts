import type { OperationProgress } from "../protocol/operations.js";
import { MIB } from "../core/units.js";

/** What a progress line shows: an operation's progress, or a build's phase and percent. */
export interface ProgressSnapshot extends Pick<OperationProgress, "phase" | "percent"> {
  bytes?: number;
  total_bytes?: number | null;
  /** Seconds left; shown while running. */
  eta_s?: number | null;
  /** What is being worked on right now (a file being compiled); shown on a terminal only. */
  detail?: string;
}

/**
 * Shows progress: on a terminal one line redrawn in place with a bar; in a pipe or a log, a
 * plain line per phase and per 10 % step, so logs stay short.
 */
export class ProgressLine {
  readonly #stream: NodeJS.WriteStream;
  readonly #tty: boolean;
  #lastPhase = "";
  #lastStep = -1;
  #drawn = false;

  constructor(stream: NodeJS.WriteStream = process.stderr) {
    this.#stream = stream;
    this.#tty = Boolean(stream.isTTY);
  }

  /** Shows `progress`; `running` false once the work ended (no ETA then). */
  update(progress: ProgressSnapshot, running = true): void {
    const { phase, percent } = progress;
    if (this.#tty) {
      const line = describe(progress, true, running);
      const detail = progress.detail ? `  ${progress.detail}` : "";
      const width = this.#stream.columns || 100;
      this.#stream.write(`\r\x1b[2K${`${line}${detail}`.slice(0, width - 1)}`);
      this.#drawn = true;
      return;
    }
    const step = percent === null ? -1 : Math.floor(percent / 10);
    if (phase === this.#lastPhase && step === this.#lastStep) return;
    this.#lastPhase = phase;
    this.#lastStep = step;
    this.#stream.write(`${describe(progress, false, running)}\n`);
  }

  /** Ends the redrawn line so what follows starts on its own. */
  done(): void {
    if (this.#drawn) this.#stream.write("\n");
    this.#drawn = false;
  }
}

/** `downloading  45.0%  12.3/27.1 MiB  ETA 5s`, with a bar on a terminal. */
export function describe(progress: ProgressSnapshot, withBar: boolean, running = true): string {
  const { phase, bytes = 0, total_bytes: total, percent, eta_s: eta } = progress;
  const parts = [phase.padEnd(11)];
  if (withBar && percent !== null) {
    const filled = Math.round(percent / 5);
    parts.push(`[${"#".repeat(filled)}${".".repeat(20 - filled)}]`);
  }
  if (percent !== null) parts.push(`${percent.toFixed(1).padStart(5)}%`);
  if (bytes > 0 || total) {
    parts.push(`${(bytes / MIB).toFixed(1)}${total ? `/${(total / MIB).toFixed(1)}` : ""} MiB`);
  }
  if (eta !== null && eta !== undefined && running) parts.push(`ETA ${eta}s`);
  return parts.join("  ").trimEnd();
}
