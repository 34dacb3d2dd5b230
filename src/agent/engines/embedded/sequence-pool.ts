/**
 * A fixed set of resources (context sequences) handed out in arrival order. A waiter whose
 * signal fires leaves the line at once.
 */
export class SequencePool<T> {
  readonly #free: T[];
  readonly #waiting: { grant: (item: T) => void }[] = [];

  constructor(items: T[]) {
    this.#free = [...items];
  }

  acquire(signal?: AbortSignal): Promise<T> {
    signal?.throwIfAborted();
    const item = this.#free.shift();
    if (item !== undefined) return Promise.resolve(item);
    return new Promise<T>((resolve, reject) => {
      const waiter = {
        grant: (granted: T) => {
          signal?.removeEventListener("abort", leave);
          resolve(granted);
        },
      };
      const leave = () => {
        this.#waiting.splice(this.#waiting.indexOf(waiter), 1);
        reject(signal?.reason);
      };
      signal?.addEventListener("abort", leave, { once: true });
      this.#waiting.push(waiter);
    });
  }

  release(item: T): void {
    const next = this.#waiting.shift();
    if (next) next.grant(item);
    else this.#free.push(item);
  }
}
