/** Exit codes scripts can rely on. */
export const EXIT = {
  ok: 0,
  /** The command ran and failed (a server could not start, a request failed). */
  failure: 1,
  /** The command line or a config file is wrong; nothing was done. */
  usage: 2,
} as const;
