import type { Pool } from "undici";
import type { DeviceMetrics, DeviceRef } from "../../protocol/inventory.js";
import type { ModelEntry } from "../agent-config.js";
import type { DeviceSupervisor } from "../supervisor/device-supervisor.js";
import type { DeviceQueue, Lease } from "./device-queue.js";

/** A device with its server supervisor, its queue and its latest measurement. */
export interface ManagedDevice {
  ref: DeviceRef;
  supervisor: DeviceSupervisor;
  queue: DeviceQueue;
  metrics: DeviceMetrics | null;
}

/** A turn on a device whose server is ready for the model. */
export interface Reservation {
  device: ManagedDevice;
  upstream: Pool;
  lease: Lease;
}

/** Chooses a device for each request and gets it ready (SPEC §5). */
export class Scheduler {
  constructor(readonly devices: readonly ManagedDevice[]) {}

  /**
   * 1. a device that has the model (ready, starting, or being switched to it), least pressure first;
   * 2. otherwise the device with the most free memory, then the least pressure.
   */
  pick(model: ModelEntry): ManagedDevice | undefined {
    const byPressure = (a: ManagedDevice, b: ManagedDevice) => a.queue.pressure - b.queue.pressure;
    const holding = this.devices.filter((device) => hasModel(device, model)).sort(byPressure);
    if (holding[0]) return holding[0];
    return [...this.devices].sort(
      (a, b) => (b.metrics?.vram_free_mb ?? 0) - (a.metrics?.vram_free_mb ?? 0) || byPressure(a, b),
    )[0];
  }

  /**
   * Waits for a turn on `device` (or the picked one) and for its server to serve `model`.
   * The turn is released if the server cannot be made ready.
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
}

function hasModel(device: ManagedDevice, model: ModelEntry): boolean {
  return (
    device.supervisor.activeModel?.model_id === model.model_id ||
    device.queue.activeModelId === model.model_id
  );
}
