import type { Pool } from "undici";
import type {
  DeviceInventory,
  DeviceMetrics,
  DeviceRef,
  QueueInfo,
  ServerInfo,
  ServerState,
} from "../../protocol/inventory.js";
import type { ModelEntry } from "../config/agent-config.js";
import type { DeviceSupervisor } from "../supervisor/device-supervisor.js";
import type { DeviceQueue, Lease } from "./device-queue.js";

/** A turn on a device whose server is ready for the model. */
export interface Reservation {
  upstream: Pool;
  lease: Lease;
}

/**
 * One device of the node: its server's supervisor, its queue and its latest measurement, behind
 * the questions the scheduler, the inventory and the metrics ask of it. Nothing outside reaches
 * the supervisor or the queue.
 */
export class Device {
  readonly ref: DeviceRef;
  readonly #supervisor: DeviceSupervisor;
  readonly #queue: DeviceQueue;
  #metrics: DeviceMetrics | null;
  #measuredAt: number;

  constructor(parts: {
    ref: DeviceRef;
    supervisor: DeviceSupervisor;
    queue: DeviceQueue;
    metrics: DeviceMetrics | null;
  }) {
    this.ref = parts.ref;
    this.#supervisor = parts.supervisor;
    this.#queue = parts.queue;
    this.#metrics = parts.metrics;
    this.#measuredAt = Date.now();
  }

  get id(): string {
    return this.ref.id;
  }

  /** The latest measurement; null when the vendor tool gave none. */
  get metrics(): DeviceMetrics | null {
    return this.#metrics;
  }

  /** When `metrics` was taken (ms since epoch). */
  get measuredAt(): number {
    return this.#measuredAt;
  }

  measured(metrics: DeviceMetrics, at: number): void {
    this.#metrics = metrics;
    this.#measuredAt = at;
  }

  get serverState(): ServerState {
    return this.#supervisor.state;
  }

  /** The model of the server that is starting or ready, if any. */
  get activeModel(): ModelEntry | null {
    return this.#supervisor.activeModel;
  }

  /** When the current server became ready (ms since epoch), or null. */
  get readySince(): number | null {
    return this.#supervisor.readySince;
  }

  get engineVersion(): string | null {
    return this.#supervisor.engineVersion;
  }

  /** In flight plus queued requests. */
  get pressure(): number {
    return this.#queue.pressure;
  }

  /** True when the device has `modelId`: its server holds it, or its queue is switching to it. */
  holds(modelId: string): boolean {
    return this.activeModel?.model_id === modelId || this.#queue.activeModelId === modelId;
  }

  queueInfo(): QueueInfo {
    return this.#queue.info();
  }

  server(): ServerInfo {
    return this.#supervisor.info();
  }

  /** Calls `listener` whenever the server changes state. */
  onServerState(listener: (state: ServerState) => void): void {
    this.#supervisor.on("state", listener);
  }

  /**
   * Waits for a turn (in arrival order, or 503 `queue_full` at once) and for the server to
   * serve `model`. The turn is released if the server cannot be made ready.
   */
  async reserve(model: ModelEntry, signal?: AbortSignal): Promise<Reservation> {
    const lease = await this.#queue.acquire(model, signal);
    try {
      return { upstream: await this.#supervisor.ensure(model, signal), lease };
    } catch (err) {
      lease.release();
      throw err;
    }
  }

  /** A request to `upstream` completed: the server works (see DeviceSupervisor.served). */
  served(upstream: Pool): void {
    this.#supervisor.served(upstream);
  }

  /** Resolves once a server that refused a connection is seen gone, or after `timeoutMs`. */
  settled(timeoutMs: number): Promise<void> {
    return this.#supervisor.settled(timeoutMs);
  }

  /** Stops the server holding `modelId` once the device has drained (an exclusive turn). */
  async unload(modelId: string, signal?: AbortSignal): Promise<void> {
    const lease = await this.#queue.acquire(null, signal);
    try {
      if (this.activeModel?.model_id === modelId) await this.#supervisor.stop();
    } finally {
      lease.release();
    }
  }

  /** Stops the server now, whatever runs on it (shutdown). */
  stop(): Promise<void> {
    return this.#supervisor.stop();
  }

  /** The device as the inventory shows it; `reservedMb` is the scheduler's estimate. */
  inventory(reservedMb: number): DeviceInventory {
    return {
      ref: this.ref,
      metrics: this.#metrics,
      vram_reserved_mb: reservedMb,
      server: this.server(),
      queue: this.queueInfo(),
      last_error: this.#supervisor.lastError,
      log_tail: [...this.#supervisor.logTail],
    };
  }
}
