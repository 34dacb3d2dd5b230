import { LOG_LINE_MAX_CHARS } from "../../protocol/inventory.js";

/**
 * The last lines a server printed, for the inventory. Tails travel in heartbeats, so each line
 * is cut to LOG_LINE_MAX_CHARS (the cut marked); the agent's own log keeps whole lines.
 */
export class LogTail {
  readonly #lines: string[] = [];
  readonly #limit: number;

  constructor(limit: number) {
    this.#limit = limit;
  }

  /** Oldest first. */
  get lines(): readonly string[] {
    return this.#lines;
  }

  push(line: string): void {
    this.#lines.push(line.length > LOG_LINE_MAX_CHARS ? clip(line) : line);
    if (this.#lines.length > this.#limit) this.#lines.splice(0, this.#lines.length - this.#limit);
  }
}

function clip(line: string): string {
  return `${line.slice(0, LOG_LINE_MAX_CHARS - 1)}…`;
}
