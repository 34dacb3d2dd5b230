import { RoleMeshError } from "../../core/errors.js";
import { MIB } from "../../core/units.js";
import type { DeviceRef } from "../../protocol/inventory.js";
import type { ModelEntry } from "../config/agent-config.js";
import type { MemoryEstimate } from "../models/memory-estimate.js";
import type { Device } from "./device.js";
import { place } from "./placement.js";

export type Estimator = (model: ModelEntry, device: DeviceRef) => MemoryEstimate;

/** Chooses a device for each request by what it holds, its queue and its memory (SPEC §5). */
export class Scheduler {
  constructor(
    readonly devices: readonly Device[],
    private readonly estimate: Estimator,
  ) {}

  /** True when some device has the model (ready, starting, or being switched to it). */
  holds(model: ModelEntry): boolean {
    return this.devices.some((device) => device.holds(model.model_id));
  }

  /**
   * The device for `model` (see `place`). Throws 503 `no_capacity` naming every device and the
   * numbers when it fits nowhere.
   */
  pick(model: ModelEntry): Device {
    if (this.devices.length === 0)
      throw new RoleMeshError("no_capacity", "this node has no device to run models on");
    const chosen = place(
      this.devices.map((device) => ({
        device,
        holdsModel: device.holds(model.model_id),
        pressure: device.pressure,
        busyWithModel: device.activeModel !== null,
        freeBytes: this.freeBytes(device),
        fits: this.#fits(model, device),
      })),
    );
    if (chosen) return chosen.device;
    throw this.#noCapacity(model);
  }

  /** Throws 503 `no_capacity` when `model` cannot go on this particular device. */
  assertFits(model: ModelEntry, device: Device): void {
    if (!device.holds(model.model_id) && !this.#fits(model, device))
      throw this.#noCapacity(model, [device]);
  }

  /** The device with this id; 400 naming the node's devices when there is none. */
  device(id: string): Device {
    const device = this.devices.find((candidate) => candidate.id === id);
    if (device) return device;
    const known = this.devices.map((candidate) => candidate.id).join(", ");
    throw new RoleMeshError(
      "invalid_request",
      `no device "${id}" on this node (devices: ${known})`,
      {
        param: "device",
      },
    );
  }

  /** Devices whose server holds `modelId` (starting or ready). */
  devicesWith(modelId: string): Device[] {
    return this.devices.filter((device) => device.activeModel?.model_id === modelId);
  }

  /** True while some device has admitted work (in flight or queued). */
  get busy(): boolean {
    return this.devices.some((device) => device.pressure > 0);
  }

  /** Memory the device's current model is estimated to take, in bytes. */
  reservedBytes(device: Device): number {
    const model = device.activeModel;
    return model ? this.estimate(model, device.ref).total : 0;
  }

  /**
   * Free memory as measured, less what our own servers will take but the measurement cannot
   * show yet (a server still loading, or ready since the last measurement).
   */
  freeBytes(device: Device): number {
    if (!device.metrics) return 0;
    const readySince = device.readySince;
    const unseen = device.activeModel && (readySince === null || readySince > device.measuredAt);
    return Math.max(
      0,
      device.metrics.vram_free_mb * MIB - (unseen ? this.reservedBytes(device) : 0),
    );
  }

  /** Fits when free memory, plus what a switch would free, covers the estimate. Unknown memory fits. */
  #fits(model: ModelEntry, device: Device): boolean {
    if (!device.metrics) return true;
    return (
      this.freeBytes(device) + this.reservedBytes(device) >= this.estimate(model, device.ref).total
    );
  }

  #noCapacity(model: ModelEntry, considered: readonly Device[] = this.devices): RoleMeshError {
    const devices = considered
      .map((device) => {
        const free = Math.floor((this.freeBytes(device) + this.reservedBytes(device)) / MIB);
        const total = device.metrics?.vram_total_mb ?? 0;
        const need = this.estimate(model, device.ref);
        return `${device.id} can offer ${free} MiB of ${total} MiB (needs ${mib(need.total)}: weights ${mib(need.weights)}, KV cache ${mib(need.kv_cache)}, overhead ${mib(need.overhead)})`;
      })
      .join("; ");
    return new RoleMeshError(
      "no_capacity",
      considered.length === 1
        ? `model ${model.model_id} does not fit: ${devices}`
        : `model ${model.model_id} fits on no device of this node: ${devices}`,
      { retryAfterS: 30 },
    );
  }
}

function mib(bytes: number): string {
  return `${Math.ceil(bytes / MIB)} MiB`;
}
