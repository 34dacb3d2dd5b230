import { cpus, freemem, totalmem } from "node:os";
import type { DeviceMetrics, DeviceRef } from "../../protocol/inventory.js";
import type { DeviceBackend } from "./backend.js";
import { MIB } from "../../core/units.js";

/** The CPU as one device, `cpu:0`, measured with the machine's RAM (not this process's). */
export class CpuBackend implements DeviceBackend {
  readonly name = "cpu" as const;

  async discover(): Promise<DeviceRef[]> {
    const model = cpus()[0]?.model.trim() || "CPU";
    return [{ id: "cpu:0", backend: "cpu", index: 0, name: `${model} (${cpus().length} cores)` }];
  }

  async measure(devices: readonly DeviceRef[]): Promise<Map<string, DeviceMetrics>> {
    // os.freemem() is MemAvailable on Linux: memory the kernel can hand out without swapping.
    const total = Math.round(totalmem() / MIB);
    const free = Math.round(freemem() / MIB);
    const metrics: DeviceMetrics = {
      vram_total_mb: total,
      vram_used_mb: total - free,
      vram_free_mb: free,
    };
    return new Map(devices.map((device) => [device.id, metrics]));
  }
}
