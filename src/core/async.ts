/** Small promise helpers shared by the supervisor, the process runner and the gateway. */

/** A promise with its resolve and reject in hand, for "tell whoever waits" signals. */
export class Deferred<T = void> {
  readonly promise: Promise<T>;
  resolve!: (value: T) => void;
  reject!: (err: Error) => void;

  constructor() {
    this.promise = new Promise<T>((resolve, reject) => {
      this.resolve = resolve;
      this.reject = reject;
    });
    // Nobody may be waiting when the work fails; that is not an unhandled rejection.
    this.promise.catch(() => undefined);
  }
}

/** Resolves after `ms`; the timer does not keep the process alive. */
export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms).unref());
}

/** Waits for `promise`, failing with `onTimeout()` at `deadline` (ms since epoch) or with the abort reason. */
export async function waitFor<T>(
  promise: Promise<T>,
  deadline: number,
  signal: AbortSignal | undefined,
  onTimeout: () => Error,
): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  let onAbort: (() => void) | undefined;
  try {
    return await Promise.race([
      promise,
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(onTimeout()), Math.max(0, deadline - Date.now()));
        if (signal) {
          onAbort = () => reject(signal.reason);
          signal.addEventListener("abort", onAbort, { once: true });
        }
      }),
    ]);
  } finally {
    clearTimeout(timer);
    if (onAbort) signal?.removeEventListener("abort", onAbort);
  }
}

/**
 * Counts work in progress so a shutdown can let it finish: `enter` for each piece (it hands
 * back the matching `leave`), `idle` to wait until none is left.
 */
export class WorkInProgress {
  #count = 0;
  #idle: Deferred | undefined;

  get count(): number {
    return this.#count;
  }

  /** Counts one piece of work; call the function it returns once, when the work ends. */
  enter(): () => void {
    this.#count++;
    let left = false;
    return () => {
      if (left) return;
      left = true;
      if (--this.#count === 0) this.#idle?.resolve();
    };
  }

  /** Resolves true once no work is left, or false when `timeoutMs` passes first. */
  async idle(timeoutMs: number): Promise<boolean> {
    if (this.#count === 0) return true;
    this.#idle ??= new Deferred();
    let timer: NodeJS.Timeout | undefined;
    try {
      return await Promise.race([
        this.#idle.promise.then(() => true),
        new Promise<boolean>((resolve) => (timer = setTimeout(() => resolve(false), timeoutMs))),
      ]);
    } finally {
      clearTimeout(timer);
    }
  }
}

/**
 * Runs work one piece at a time, in the order it was given; a piece that fails does not stop
 * the ones after it. For start and stop transitions that must never overlap.
 */
export class Serial {
  #last: Promise<unknown> = Promise.resolve();

  run<T>(work: () => Promise<T>): Promise<T> {
    const next = this.#last.then(work, work);
    this.#last = next.catch(() => undefined);
    return next;
  }
}
