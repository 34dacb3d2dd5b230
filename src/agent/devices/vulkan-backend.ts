import type { Logger } from "../../core/logger.js";
import type { DeviceMetrics, DeviceRef } from "../../protocol/inventory.js";
import type { DeviceBackend } from "./backend.js";
import { bytesToMib, numberOrUndefined } from "./parse-helpers.js";
import { runTool } from "./run-tool.js";

/**
 * GPUs through `vulkaninfo` (SPEC §3). `--summary` lists the devices; memory comes from the
 * full report's device-local heaps, whose `budget` and `usage` (VK_EXT_memory_budget) give
 * what is free. CPU implementations such as llvmpipe are not GPUs and are left out.
 */
export class VulkanBackend implements DeviceBackend {
  readonly name = "vulkan" as const;

  constructor(
    private readonly log: Logger,
    private readonly command = "vulkaninfo",
  ) {}

  async discover(): Promise<DeviceRef[]> {
    const result = await runTool(this.command, ["--summary"]);
    const devices = parseVulkanSummary(result.stdout);
    if (devices.length === 0) {
      this.log.warn(
        { tool: this.command },
        `vulkan: ${result.ok ? "no GPU listed" : result.reason}`,
      );
    }
    return devices;
  }

  async measure(devices: readonly DeviceRef[]): Promise<Map<string, DeviceMetrics>> {
    const result = await runTool(this.command, []);
    const heaps = parseVulkanHeaps(result.stdout);
    const measured = new Map<string, DeviceMetrics>();
    for (const device of devices) {
      const metrics = heaps.get(device.index);
      if (metrics) measured.set(device.id, metrics);
    }
    return measured;
  }
}

/** Splits vulkaninfo output into `GPU<n>:` blocks. */
function gpuBlocks(stdout: string): Map<number, string> {
  const blocks = new Map<number, string>();
  const parts = stdout.split(/^GPU(\d+):\s*$/m);
  for (let i = 1; i + 1 < parts.length; i += 2) {
    const index = Number(parts[i]);
    blocks.set(index, (blocks.get(index) ?? "") + (parts[i + 1] ?? ""));
  }
  return blocks;
}

/** Parses `vulkaninfo --summary`: the `GPU<n>:` blocks of the Devices section. */
export function parseVulkanSummary(stdout: string): DeviceRef[] {
  const devices: DeviceRef[] = [];
  for (const [index, block] of gpuBlocks(stdout)) {
    const field = (name: string) =>
      new RegExp(`^\\s*${name}\\s*=\\s*(.+)$`, "m").exec(block)?.[1]?.trim();
    const type = field("deviceType");
    if (!type || type.endsWith("_CPU")) continue;
    const ref: DeviceRef = {
      id: `gpu:${index}`,
      backend: "vulkan",
      index,
      name: field("deviceName") ?? `Vulkan GPU ${index}`,
    };
    const uuid = field("deviceUUID");
    if (uuid) ref.uuid = uuid;
    devices.push(ref);
  }
  return devices;
}

/**
 * Device-local heaps per GPU from the full `vulkaninfo` report. Free is budget minus usage
 * where the driver reports a budget, else unknown (no entry).
 */
export function parseVulkanHeaps(stdout: string): Map<number, DeviceMetrics> {
  const metrics = new Map<number, DeviceMetrics>();
  for (const [index, block] of gpuBlocks(stdout)) {
    let total = 0;
    let free = 0;
    let budgeted = false;
    for (const heap of block.split(/memoryHeaps\[\d+\]:/).slice(1)) {
      const body = heap.split(/memoryTypes|memoryHeaps\[/)[0] ?? "";
      if (!body.includes("MEMORY_HEAP_DEVICE_LOCAL_BIT")) continue;
      const size = numberOrUndefined(/size\s*=\s*(\d+)/.exec(body)?.[1]);
      const budget = numberOrUndefined(/budget\s*=\s*(\d+)/.exec(body)?.[1]);
      const usage = numberOrUndefined(/usage\s*=\s*(\d+)/.exec(body)?.[1]);
      if (size === undefined) continue;
      total += size;
      if (budget !== undefined) {
        budgeted = true;
        free += Math.max(0, budget - (usage ?? 0));
      }
    }
    if (total > 0 && budgeted) {
      metrics.set(index, {
        vram_total_mb: bytesToMib(total),
        vram_used_mb: bytesToMib(total - free),
        vram_free_mb: bytesToMib(free),
      });
    }
  }
  return metrics;
}
