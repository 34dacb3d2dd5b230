import type { DeviceMetrics } from "../../protocol/inventory.js";
import { MIB } from "../../core/units.js";
/** Small helpers shared by the device tool parsers. */

/**
 * A number from a tool's text, or undefined where the tool had none: `[N/A]`,
 * `[Not Supported]`, `N/A`, an empty field, or anything else that is not a number.
 */
export function numberOrUndefined(text: unknown): number | undefined {
  if (typeof text === "number") return Number.isFinite(text) ? text : undefined;
  if (typeof text !== "string") return undefined;
  const trimmed = text.trim();
  if (trimmed === "" || trimmed.startsWith("[") || /^n\/?a$/i.test(trimmed)) return undefined;
  const value = Number(trimmed);
  return Number.isFinite(value) ? value : undefined;
}

export function bytesToMib(bytes: number): number {
  return Math.round(bytes / MIB);
}

/** Parses JSON a tool printed, or undefined when it is not JSON (an error message, say). */
export function parseJson(text: string): unknown {
  try {
    return JSON.parse(text) as unknown;
  } catch {
    return undefined;
  }
}

/** Leaves out the optional metrics a tool did not give, instead of reporting them as 0. */
export function optionalMetrics(values: {
  utilization_pct?: number | undefined;
  temperature_c?: number | undefined;
  power_w?: number | undefined;
}): { utilization_pct?: number; temperature_c?: number; power_w?: number } {
  return Object.fromEntries(Object.entries(values).filter(([, value]) => value !== undefined));
}

/**
 * Metrics from a tool's memory readings in MiB: none without total and free (a device the tool
 * could not read), used derived from them when the tool leaves it out.
 */
export function memoryMetrics(
  memory: { total: number | undefined; used: number | undefined; free: number | undefined },
  extras: Parameters<typeof optionalMetrics>[0] = {},
): DeviceMetrics | null {
  const { total, used, free } = memory;
  if (total === undefined || free === undefined) return null;
  return {
    vram_total_mb: total,
    vram_used_mb: used ?? total - free,
    vram_free_mb: free,
    ...optionalMetrics(extras),
  };
}
