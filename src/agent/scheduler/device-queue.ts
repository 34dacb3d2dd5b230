import { RoleMeshError } from "../../core/errors.js";
import type { QueueInfo } from "../../protocol/inventory.js";
import type { ModelEntry } from "../config/agent-config.js";

/** A granted turn on a device; `release()` exactly once when the work is done. */
export interface Lease {
  release(): void;
}

interface Waiter {
  /** The model the work needs; null for exclusive work (unload) that needs the device idle. */
  model: ModelEntry | null;
  grant(): void;
}

/**
 * Admission and ordering for one device (SPEC §5): at most `parallel` requests of the active
 * model run at once, at most `limit` are in flight plus queued, and the queue is served in
 * arrival order. Work for another model waits until the device is drained, so a switch never
 * stops a server that still has admitted requests.
 */
export class DeviceQueue {
  readonly limit: number;
  #inFlight = 0;
  #waiters: Waiter[] = [];
  /** The model the device serves or is switching to, set when a turn is granted. */
  #activeModel: ModelEntry | null = null;
  /** When model work last started or ended (ms since the epoch); unloads are no activity. */
  #lastActiveAt: number | null = null;
  #onChange: () => void;

  constructor(limit: number, onChange: () => void = () => undefined) {
    this.limit = limit;
    this.#onChange = onChange;
  }

  get activeModelId(): string | null {
    return this.#activeModel?.model_id ?? null;
  }

  /** In flight plus queued: what the scheduler compares devices by. */
  get pressure(): number {
    return this.#inFlight + this.#waiters.length;
  }

  info(): QueueInfo {
    return {
      in_flight: this.#inFlight,
      pending: this.#waiters.length,
      limit: this.limit,
      last_active_at:
        this.#lastActiveAt === null ? null : new Date(this.#lastActiveAt).toISOString(),
    };
  }

  /**
   * Admits work and waits for its turn. Rejects at once with 503 `queue_full` when the device
   * is at its limit, and with the abort reason when `signal` fires while queued (the place is
   * freed at once).
   */
  acquire(model: ModelEntry | null, signal?: AbortSignal): Promise<Lease> {
    signal?.throwIfAborted();
    if (this.pressure >= this.limit) {
      return Promise.reject(
        new RoleMeshError(
          "queue_full",
          `the device is busy: ${this.#inFlight} in flight and ${this.#waiters.length} queued (limit ${this.limit}); retry shortly`,
          { retryAfterS: 1 },
        ),
      );
    }
    return new Promise<Lease>((resolve, reject) => {
      const onAbort = () => {
        const index = this.#waiters.indexOf(waiter);
        if (index < 0) return;
        this.#waiters.splice(index, 1);
        reject(signal?.reason);
        this.#pump();
      };
      const waiter: Waiter = {
        model,
        grant: () => {
          signal?.removeEventListener("abort", onAbort);
          resolve(this.#lease(model !== null));
        },
      };
      signal?.addEventListener("abort", onAbort, { once: true });
      this.#waiters.push(waiter);
      this.#pump();
    });
  }

  #lease(isModelWork: boolean): Lease {
    if (isModelWork) this.#lastActiveAt = Date.now();
    let released = false;
    return {
      release: () => {
        if (released) return;
        released = true;
        if (isModelWork) this.#lastActiveAt = Date.now();
        this.#inFlight--;
        this.#pump();
      },
    };
  }

  /** Grants turns from the head of the queue while the head may run. */
  #pump(): void {
    for (let head = this.#waiters[0]; head && this.#mayRun(head); head = this.#waiters[0]) {
      this.#waiters.shift();
      this.#inFlight++;
      this.#activeModel = head.model;
      head.grant();
    }
    this.#onChange();
  }

  #mayRun(waiter: Waiter): boolean {
    if (this.#inFlight === 0) return true;
    const active = this.#activeModel;
    return (
      waiter.model !== null &&
      active !== null &&
      active.model_id === waiter.model.model_id &&
      this.#inFlight < active.parallel
    );
  }
}
