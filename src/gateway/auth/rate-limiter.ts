/**
 * Requests-per-minute limits per client key: a token bucket that holds a minute's worth and
 * refills continuously, so a key may burst up to its limit and then goes at its rate.
 */
export class RateLimiter {
  readonly #buckets = new Map<string, { tokens: number; at: number }>();

  constructor(private readonly now: () => number = Date.now) {}

  /** Takes one request from `name`'s budget; returns the seconds to wait when there is none. */
  take(
    name: string,
    perMinute: number,
  ): { allowed: true } | { allowed: false; retryAfterS: number } {
    if (perMinute <= 0) return { allowed: true };
    const now = this.now();
    const ratePerMs = perMinute / 60_000;
    const bucket = this.#buckets.get(name) ?? { tokens: perMinute, at: now };
    bucket.tokens = Math.min(perMinute, bucket.tokens + (now - bucket.at) * ratePerMs);
    bucket.at = now;
    this.#buckets.set(name, bucket);
    if (bucket.tokens >= 1) {
      bucket.tokens -= 1;
      return { allowed: true };
    }
    return { allowed: false, retryAfterS: Math.ceil((1 - bucket.tokens) / ratePerMs / 1000) };
  }
}
