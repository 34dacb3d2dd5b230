/** What placement knows of a device: a small view of it, so the choice is a pure function. */
export interface PlacementCandidate {
  /** The device has the requested model (its server holds it, or it is switching to it). */
  holdsModel: boolean;
  /** In flight plus queued requests. */
  pressure: number;
  /** Its server holds some model (that a switch would evict). */
  busyWithModel: boolean;
  /** Memory free for a new model, in bytes. */
  freeBytes: number;
  /** The requested model fits, counting what a switch would free. */
  fits: boolean;
}

/**
 * The device for a request (SPEC §5), or undefined when the model fits nowhere:
 * 1. a device that has the model, least pressure first;
 * 2. otherwise a device where it fits: idle before busy, empty before one that must evict a
 *    model, then most free memory, then least pressure.
 * Ties keep the candidates' order.
 */
export function place<C extends PlacementCandidate>(candidates: readonly C[]): C | undefined {
  const holding = candidates.filter((candidate) => candidate.holdsModel);
  if (holding.length > 0) return [...holding].sort((a, b) => a.pressure - b.pressure)[0];
  const rank = (candidate: C) => [
    candidate.pressure > 0 ? 1 : 0,
    candidate.busyWithModel ? 1 : 0,
    -candidate.freeBytes,
    candidate.pressure,
  ];
  return candidates
    .filter((candidate) => candidate.fits)
    .sort((a, b) => compare(rank(a), rank(b)))[0];
}

function compare(a: number[], b: number[]): number {
  for (let i = 0; i < a.length; i++) {
    const difference = (a[i] ?? 0) - (b[i] ?? 0);
    if (difference !== 0) return difference;
  }
  return 0;
}
