const MAX_BACKOFF_MS = 60_000;

export interface CrashBackoffOptions {
  /**
   * A server that ran this long before crashing starts a fresh series (default: a minute, the
   * longest delay). A server that starts in milliseconds can afford a shorter one.
   */
  stableRunMs?: number;
}

/**
 * The delay before a crashed server may start again: 1 s, doubling with each crash in a row up
 * to a minute (Kubernetes' CrashLoopBackOff, with shorter steps: a model server here is local).
 */
export class CrashBackoff {
  readonly #stableRunMs: number;
  #consecutiveFailures = 0;
  #nextAttemptAt = 0;

  constructor(options: CrashBackoffOptions = {}) {
    this.#stableRunMs = options.stableRunMs ?? MAX_BACKOFF_MS;
  }

  get consecutiveFailures(): number {
    return this.#consecutiveFailures;
  }

  /** When the next start may happen (ms since epoch); in the past when it may happen now. */
  get nextAttemptAt(): number {
    return this.#nextAttemptAt;
  }

  /** How long the next start must still wait, in ms (0: now). */
  remainingMs(): number {
    return Math.max(0, this.#nextAttemptAt - Date.now());
  }

  /** Counts a crash of a server that ran `ranMs`; returns how long the next start waits. */
  crashed(ranMs: number): number {
    if (ranMs >= this.#stableRunMs) this.#consecutiveFailures = 0;
    this.#consecutiveFailures++;
    const delayMs = Math.min(MAX_BACKOFF_MS, 1000 * 2 ** (this.#consecutiveFailures - 1));
    this.#nextAttemptAt = Date.now() + delayMs;
    return delayMs;
  }

  /** The server has shown it works: its next crash starts a fresh series. */
  succeeded(): void {
    this.#consecutiveFailures = 0;
  }

  /** Forgets everything: a different server starts now. */
  reset(): void {
    this.#consecutiveFailures = 0;
    this.#nextAttemptAt = 0;
  }
}
