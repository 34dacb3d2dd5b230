import type { OperationStatus } from "../protocol/operations.js";

const MIB = 1024 * 1024;

/**
 * Shows an operation's progress: on a terminal one line redrawn in place with a bar; in a
 * pipe or a log, a plain line per phase and per 10 % step, so logs stay short.
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

  update(status: OperationStatus): void {
    const { phase, percent } = status.progress;
    if (this.#tty) {
      this.#stream.write(`\r\x1b[2K${describe(status, true)}`);
      this.#drawn = true;
      return;
    }
    const step = percent === null ? -1 : Math.floor(percent / 10);
    if (phase === this.#lastPhase && step === this.#lastStep) return;
    this.#lastPhase = phase;
    this.#lastStep = step;
    this.#stream.write(`${describe(status, false)}\n`);
  }

  /** Ends the redrawn line so what follows starts on its own. */
  done(): void {
    if (this.#drawn) this.#stream.write("\n");
    this.#drawn = false;
  }
}

/** `downloading  45.0%  12.3/27.1 MiB  ETA 5s`, with a bar on a terminal. */
export function describe(status: OperationStatus, withBar: boolean): string {
  const { phase, bytes, total_bytes: total, percent, eta_s: eta } = status.progress;
  const parts = [phase.padEnd(11)];
  if (withBar && percent !== null) {
    const filled = Math.round(percent / 5);
    parts.push(`[${"#".repeat(filled)}${".".repeat(20 - filled)}]`);
  }
  if (percent !== null) parts.push(`${percent.toFixed(1).padStart(5)}%`);
  if (bytes > 0 || total) {
    parts.push(`${(bytes / MIB).toFixed(1)}${total ? `/${(total / MIB).toFixed(1)}` : ""} MiB`);
  }
  if (eta !== null && status.state === "running") parts.push(`ETA ${eta}s`);
  return parts.join("  ").trimEnd();
}
