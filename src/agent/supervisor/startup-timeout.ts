import { GIB } from "../../core/units.js";

/**
 * How long requests wait for a model to load (SPEC §2): `baseS`, or `perGibS` times the file
 * size in GiB when that is longer, so big models get proportionally more time.
 */
export function startupTimeoutMs(baseS: number, perGibS: number, sizeBytes: number | null): number {
  const scaled = perGibS > 0 && sizeBytes !== null ? (perGibS * sizeBytes) / GIB : 0;
  return Math.max(baseS, scaled) * 1000;
}
