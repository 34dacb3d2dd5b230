/** Exit codes scripts can rely on. */
export const EXIT = {
  ok: 0,
  /** The command ran and failed (a server could not start, a request failed or was refused). */
  failure: 1,
  /** The command line or a config file is wrong; nothing was done. */
  usage: 2,
  /** The command's timeout passed while the node still works on it (e.g. still installing). */
  stillRunning: 3,
} as const;

/** Ends a command with a given exit code and message (no stack, no "rolemesh:" prefix). */
export class CliExit extends Error {
  override readonly name = "CliExit";
  readonly exitCode: number;

  constructor(exitCode: number, message: string) {
    super(message);
    this.exitCode = exitCode;
  }
}
