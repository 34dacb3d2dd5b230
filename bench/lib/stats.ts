/** Medians, percentiles and ratios for benchmark figures. */

export function percentile(values: readonly number[], p: number): number {
  if (values.length === 0) return NaN;
  const sorted = [...values].sort((a, b) => a - b);
  const index = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[index]!;
}

export const median = (values: readonly number[]) => percentile(values, 50);

/** A figure measured over repeated runs: its median and p99 across the runs. */
export interface Figure {
  median: number;
  p99: number;
  runs: number[];
}

export function figure(runs: number[]): Figure {
  return { median: median(runs), p99: percentile(runs, 99), runs };
}

export function round(value: number, digits = 1): number {
  const scale = 10 ** digits;
  return Math.round(value * scale) / scale;
}
