import { randomUUID } from "node:crypto";
import { EventEmitter } from "node:events";
import { toRoleMeshError } from "../../core/errors.js";
import type {
  OperationProgress,
  OperationStarted,
  OperationStatus,
} from "../../protocol/operations.js";

/** How many finished operations stay readable. */
const KEEP_FINISHED = 100;
/** Byte counts alone are announced at most this often (a download reports every chunk). */
const PROGRESS_EVERY_MS = 200;

/** What a running operation may report about itself. */
export interface ProgressReport {
  phase?: string;
  bytes?: number;
  totalBytes?: number | null;
}

/** One long command: its status, and `change` events until it is done. */
export class Operation extends EventEmitter<{ change: [OperationStatus] }> {
  readonly #status: OperationStatus;
  readonly #cancel = new AbortController();
  readonly #startedMs = Date.now();
  /** Bytes per second, smoothed, for the ETA. */
  #rate = 0;
  #rateAt = { ms: Date.now(), bytes: 0 };
  #announcedAt = 0;
  /** A trailing announcement of byte counts held back by the rate limit. */
  #trailing: NodeJS.Timeout | undefined;

  constructor(command: string, nodeId: string) {
    super();
    this.#status = {
      op_id: `op-${randomUUID()}`,
      command,
      node_id: nodeId,
      state: "running",
      progress: { phase: "starting", bytes: 0, total_bytes: null, percent: null, eta_s: null },
      result: null,
      error: null,
      started_at: new Date(this.#startedMs).toISOString(),
      finished_at: null,
    };
  }

  get id(): string {
    return this.#status.op_id;
  }

  get done(): boolean {
    return this.#status.state !== "running";
  }

  /** Aborted when the operation is cancelled: the work stops at its next step. */
  get signal(): AbortSignal {
    return this.#cancel.signal;
  }

  /**
   * Asks the work to stop. The operation ends `cancelled` once the work has stopped — not
   * before, so no second run of the same work can start while this one still writes.
   */
  cancel(): void {
    if (!this.done) this.#cancel.abort(new Error("operation cancelled"));
  }

  /** Resolves once the operation has ended (true), or after `timeoutMs` (false). */
  ended(timeoutMs: number): Promise<boolean> {
    if (this.done) return Promise.resolve(true);
    return new Promise((resolve) => {
      const finish = (ended: boolean) => {
        clearTimeout(timer);
        this.off("change", onChange);
        resolve(ended);
      };
      const onChange = (status: OperationStatus) => {
        if (status.state !== "running") finish(true);
      };
      const timer = setTimeout(() => finish(false), timeoutMs);
      this.on("change", onChange);
    });
  }

  status(): OperationStatus {
    return structuredClone(this.#status);
  }

  report(report: ProgressReport): void {
    if (this.done) return;
    const progress: OperationProgress = { ...this.#status.progress };
    if (report.phase !== undefined) progress.phase = report.phase;
    if (report.totalBytes !== undefined) progress.total_bytes = report.totalBytes;
    if (report.bytes !== undefined) {
      this.#measureRate(report.bytes);
      progress.bytes = report.bytes;
    }
    const total = progress.total_bytes;
    progress.percent = total
      ? Math.min(100, Math.floor((progress.bytes / total) * 1000) / 10)
      : null;
    progress.eta_s =
      total && this.#rate > 0 ? Math.ceil(Math.max(0, total - progress.bytes) / this.#rate) : null;
    const phaseChanged = progress.phase !== this.#status.progress.phase;
    this.#status.progress = progress;
    const wait = this.#announcedAt + PROGRESS_EVERY_MS - Date.now();
    if (phaseChanged || wait <= 0) this.#announce();
    else this.#trailing ??= setTimeout(() => this.#announce(), wait);
  }

  #announce(): void {
    clearTimeout(this.#trailing);
    this.#trailing = undefined;
    this.#announcedAt = Date.now();
    this.emit("change", this.status());
  }

  succeed(result: unknown): void {
    this.#finish({ state: "succeeded", result });
  }

  fail(err: unknown): void {
    if (this.#cancel.signal.aborted) this.#finish({ state: "cancelled" });
    else this.#finish({ state: "failed", error: toRoleMeshError(err).toBody().error });
  }

  #finish(outcome: Partial<OperationStatus>): void {
    if (this.done) return;
    Object.assign(this.#status, outcome, { finished_at: new Date().toISOString() });
    if (outcome.state === "succeeded") {
      this.#status.progress = { ...this.#status.progress, phase: "done", eta_s: 0 };
    }
    this.#announce();
  }

  #measureRate(bytes: number): void {
    const now = Date.now();
    const elapsed = now - this.#rateAt.ms;
    if (elapsed < 250 || bytes < this.#rateAt.bytes) {
      if (bytes < this.#rateAt.bytes) this.#rateAt = { ms: now, bytes };
      return;
    }
    const rate = ((bytes - this.#rateAt.bytes) * 1000) / elapsed;
    this.#rate = this.#rate === 0 ? rate : 0.7 * this.#rate + 0.3 * rate;
    this.#rateAt = { ms: now, bytes };
  }
}

/**
 * The node's long commands, each announced as `started` (so its progress can be published) and
 * as `forgotten` once it is no longer readable. Work is keyed (e.g. `model.install:qwen`):
 * starting work whose key is already running joins that operation instead of starting it again.
 */
export class Operations extends EventEmitter<{ started: [Operation]; forgotten: [Operation] }> {
  readonly #byId = new Map<string, Operation>();
  readonly #running = new Map<string, Operation>();
  readonly #nodeId: string;

  constructor(nodeId: string) {
    super();
    this.#nodeId = nodeId;
  }

  /** Starts `work` under `key`, or joins the operation already running under it. */
  start(
    command: string,
    key: string,
    work: (operation: Operation) => Promise<unknown>,
  ): OperationStarted {
    const running = this.#running.get(key);
    if (running) return { op_id: running.id, joined: true };
    const operation = new Operation(command, this.#nodeId);
    this.#byId.set(operation.id, operation);
    this.#running.set(key, operation);
    this.emit("started", operation);
    // The key is free before the end is announced: whoever hears it may start the work again.
    const settle = (finish: () => void) => {
      this.#running.delete(key);
      finish();
      this.#forgetOld();
    };
    void work(operation).then(
      (result) => settle(() => operation.succeed(result)),
      (err: unknown) => settle(() => operation.fail(err)),
    );
    return { op_id: operation.id, joined: false };
  }

  get(opId: string): Operation | undefined {
    return this.#byId.get(opId);
  }

  /** The operations still running, e.g. a download a sleeping machine would cut short. */
  running(): OperationStatus[] {
    return [...this.#running.values()].map((operation) => operation.status());
  }

  /** Cancels every running operation and resolves once each has stopped, or after `timeoutMs`. */
  async cancelAll(timeoutMs: number): Promise<void> {
    const running = [...this.#running.values()];
    for (const operation of running) operation.cancel();
    await Promise.all(running.map((operation) => operation.ended(timeoutMs)));
  }

  #forgetOld(): void {
    const finished = [...this.#byId.values()].filter((operation) => operation.done);
    for (const operation of finished.slice(0, Math.max(0, finished.length - KEEP_FINISHED))) {
      this.#byId.delete(operation.id);
      this.emit("forgotten", operation);
    }
  }
}
