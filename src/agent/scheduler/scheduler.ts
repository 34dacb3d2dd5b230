import type { Pool } from "undici";
import { RoleMeshError } from "../../core/errors.js";
import type { DeviceMetrics, DeviceRef } from "../../protocol/inventory.js";
import type { ModelEntry } from "../config/agent-config.js";
import type { MemoryEstimate } from "../models/memory-estimate.js";
import type { DeviceSupervisor } from "../supervisor/device-supervisor.js";
import type { DeviceQueue, Lease } from "./device-queue.js";
import { MIB } from "../../core/units.js";

/** A device with its server supervisor, its queue and its latest measurement. */
export interface ManagedDevice {
  ref: DeviceRef;
  supervisor: DeviceSupervisor;
  queue: DeviceQueue;
  metrics: DeviceMetrics | null;
  /** When `metrics` was taken (ms since epoch). */
  measuredAt: number;
}

/** A turn on a device whose server is ready for the model. */
export interface Reservation {
  device: ManagedDevice;
  upstream: Pool;
  lease: Lease;
}

export type Estimator = (model: ModelEntry, device: DeviceRef) => MemoryEstimate;

/** Chooses a device for each request and gets it ready (SPEC §5). */
export class Scheduler {
  constructor(
    readonly devices: readonly ManagedDevice[],
    private readonly estimate: Estimator,
  ) {}

  /** True when some device has the model (ready, starting, or being switched to it). */
  holds(model: ModelEntry): boolean {
    return this.devices.some((device) => hasModel(device, model));
  }

  /**
   * 1. a device that has the model, least queue pressure first;
   * 2. otherwise a device where it fits: idle before busy, empty before one that must evict
   *    a model, then most free memory, then least pressure.
   * Throws 503 `no_capacity` naming every device and the numbers when it fits nowhere.
   */
  pick(model: ModelEntry): ManagedDevice {
    const byPressure = (a: ManagedDevice, b: ManagedDevice) => a.queue.pressure - b.queue.pressure;
    const holding = this.devices.filter((device) => hasModel(device, model)).sort(byPressure);
    if (holding[0]) return holding[0];
    if (this.devices.length === 0)
      throw new RoleMeshError("no_capacity", "this node has no device to run models on");
    const fitting = this.devices.filter((device) => this.#fits(model, device));
    const rank = (device: ManagedDevice) => [
      device.queue.pressure > 0 ? 1 : 0,
      device.supervisor.activeModel ? 1 : 0,
      -this.freeBytes(device),
      device.queue.pressure,
    ];
    const [best] = fitting.sort((a, b) => compare(rank(a), rank(b)));
    if (best) return best;
    throw this.#noCapacity(model);
  }

  /** Throws 503 `no_capacity` when `model` cannot go on this particular device. */
  assertFits(model: ModelEntry, device: ManagedDevice): void {
    if (!hasModel(device, model) && !this.#fits(model, device))
      throw this.#noCapacity(model, [device]);
  }

  /**
   * Waits for a turn on `device` and for its server to serve `model`. The turn is released if
   * the server cannot be made ready.
   */
  async reserve(
    device: ManagedDevice,
    model: ModelEntry,
    signal?: AbortSignal,
  ): Promise<Reservation> {
    const lease = await device.queue.acquire(model, signal);
    try {
      const upstream = await device.supervisor.ensure(model, signal);
      return { device, upstream, lease };
    } catch (err) {
      lease.release();
      throw err;
    }
  }

  /** Devices whose server holds `modelId` (starting or ready). */
  devicesWith(modelId: string): ManagedDevice[] {
    return this.devices.filter((device) => device.supervisor.activeModel?.model_id === modelId);
  }

  /** Memory the device's current model is estimated to take, in bytes. */
  reservedBytes(device: ManagedDevice): number {
    const model = device.supervisor.activeModel;
    return model ? this.estimate(model, device.ref).total : 0;
  }

  /**
   * Free memory as measured, less what our own servers will take but the measurement cannot
   * show yet (a server still loading, or ready since the last measurement).
   */
  freeBytes(device: ManagedDevice): number {
    if (!device.metrics) return 0;
    const readySince = device.supervisor.readySince;
    const unseen =
      device.supervisor.activeModel && (readySince === null || readySince > device.measuredAt);
    return Math.max(
      0,
      device.metrics.vram_free_mb * MIB - (unseen ? this.reservedBytes(device) : 0),
    );
  }

  /** Fits when free memory, plus what a switch would free, covers the estimate. Unknown memory fits. */
  #fits(model: ModelEntry, device: ManagedDevice): boolean {
    if (!device.metrics) return true;
    return (
      this.freeBytes(device) + this.reservedBytes(device) >= this.estimate(model, device.ref).total
    );
  }

  #noCapacity(
    model: ModelEntry,
    considered: readonly ManagedDevice[] = this.devices,
  ): RoleMeshError {
    const devices = considered
      .map((device) => {
        const free = Math.floor((this.freeBytes(device) + this.reservedBytes(device)) / MIB);
        const total = device.metrics?.vram_total_mb ?? 0;
        const need = this.estimate(model, device.ref);
        return `${device.ref.id} can offer ${free} MiB of ${total} MiB (needs ${mib(need.total)}: weights ${mib(need.weights)}, KV cache ${mib(need.kv_cache)}, overhead ${mib(need.overhead)})`;
      })
      .join("; ");
    return new RoleMeshError(
      "no_capacity",
      considered.length === 1
        ? `model ${model.model_id} does not fit: ${devices}`
        : `model ${model.model_id} fits on no device of this node: ${devices}`,
      {
        retryAfterS: 30,
      },
    );
  }
}

function hasModel(device: ManagedDevice, model: ModelEntry): boolean {
  return (
    device.supervisor.activeModel?.model_id === model.model_id ||
    device.queue.activeModelId === model.model_id
  );
}

function compare(a: number[], b: number[]): number {
  for (let i = 0; i < a.length; i++) {
    const difference = (a[i] ?? 0) - (b[i] ?? 0);
    if (difference !== 0) return difference;
  }
  return 0;
}

function mib(bytes: number): string {
  return `${Math.ceil(bytes / MIB)} MiB`;
}
