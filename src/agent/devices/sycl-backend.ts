import type { Logger } from "../../core/logger.js";
import type { DeviceMetrics, DeviceRef } from "../../protocol/inventory.js";
import type { DeviceBackend } from "./backend.js";
import { bytesToMib, numberOrUndefined, optionalMetrics, parseJson } from "./parse-helpers.js";
import { runTool } from "./run-tool.js";

/**
 * Intel GPUs through `sycl-ls` (Level Zero GPUs only: that is what llama.cpp's SYCL build
 * uses), measured with `xpu-smi` where it is installed (SPEC §3). Without xpu-smi the devices
 * are found but their memory is unknown, so placement does not refuse them.
 */
export class SyclBackend implements DeviceBackend {
  readonly name = "sycl" as const;

  constructor(
    private readonly log: Logger,
    private readonly commands = { syclLs: "sycl-ls", xpuSmi: "xpu-smi" },
  ) {}

  async discover(): Promise<DeviceRef[]> {
    const result = await runTool(this.commands.syclLs, []);
    const devices = parseSyclLs(result.stdout);
    if (devices.length === 0) {
      this.log.warn(
        { tool: this.commands.syclLs },
        `sycl: ${result.ok ? "no Level Zero GPU listed" : result.reason}`,
      );
    }
    return devices;
  }

  async measure(devices: readonly DeviceRef[]): Promise<Map<string, DeviceMetrics>> {
    const measured = new Map<string, DeviceMetrics>();
    const discovery = await runTool(this.commands.xpuSmi, ["discovery", "-j"]);
    if (!discovery.ok) {
      this.log.debug({ tool: this.commands.xpuSmi }, `sycl: ${discovery.reason}; memory unknown`);
      return measured;
    }
    const totals = parseXpuSmiDiscovery(discovery.stdout);
    for (const device of devices) {
      const stats = await runTool(this.commands.xpuSmi, [
        "stats",
        "-d",
        String(device.index),
        "-j",
      ]);
      const metrics = parseXpuSmiStats(stats.stdout, totals.get(device.index));
      if (metrics) measured.set(device.id, metrics);
    }
    return measured;
  }
}

/**
 * Parses `sycl-ls`. Current releases print `[level_zero:gpu][level_zero:0] Intel(R)
 * Level-Zero, NAME VERSION [DRIVER]`, older ones `[ext_oneapi_level_zero:gpu:0] …`.
 */
export function parseSyclLs(stdout: string): DeviceRef[] {
  const devices: DeviceRef[] = [];
  for (const line of stdout.split("\n")) {
    const match =
      /^\[level_zero:gpu\]\[level_zero:(\d+)\]\s+(.*)$/.exec(line.trim()) ??
      /^\[ext_oneapi_level_zero:gpu:(\d+)\]\s+(.*)$/.exec(line.trim());
    if (!match) continue;
    const index = Number(match[1]);
    const description = match[2] ?? "";
    const name =
      /Level-Zero,\s*(.*?)\s+\d+\.\d+(?:\.\d+)?\s+\[/.exec(description)?.[1] ?? description;
    devices.push({ id: `gpu:${index}`, backend: "sycl", index, name });
  }
  return devices;
}

/** Total memory per device id from `xpu-smi discovery -j`. */
export function parseXpuSmiDiscovery(stdout: string): Map<number, number> {
  const json = parseJson(stdout) as { device_list?: Record<string, unknown>[] } | undefined;
  const totals = new Map<number, number>();
  for (const device of json?.device_list ?? []) {
    const id = numberOrUndefined(device.device_id);
    const bytes = numberOrUndefined(device.memory_physical_size_byte);
    if (id !== undefined && bytes !== undefined) totals.set(id, bytesToMib(bytes));
  }
  return totals;
}

/**
 * One device's `xpu-smi stats -d N -j`: `device_level` readings by `metrics_type`, memory in
 * MiB. Returns null without a total or a used figure.
 */
export function parseXpuSmiStats(
  stdout: string,
  totalMb: number | undefined,
): DeviceMetrics | null {
  const json = parseJson(stdout) as
    { device_level?: { metrics_type?: unknown; value?: unknown }[] } | undefined;
  const readings = new Map(
    (json?.device_level ?? []).map((entry) => [entry.metrics_type, numberOrUndefined(entry.value)]),
  );
  const used = readings.get("XPUM_STATS_MEMORY_USED");
  if (totalMb === undefined || used === undefined) return null;
  const usedMb = Math.round(used);
  return {
    vram_total_mb: totalMb,
    vram_used_mb: usedMb,
    vram_free_mb: Math.max(0, totalMb - usedMb),
    ...optionalMetrics({
      utilization_pct: readings.get("XPUM_STATS_GPU_UTILIZATION"),
      temperature_c: readings.get("XPUM_STATS_GPU_CORE_TEMPERATURE"),
      power_w: readings.get("XPUM_STATS_POWER"),
    }),
  };
}
