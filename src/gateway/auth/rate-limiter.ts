/**
 * Per-name rate limits: a token bucket that holds `burst` requests (a minute's worth unless
 * told otherwise) and refills continuously, so a name may burst and then goes at its rate.
 */
export class RateLimiter {
  readonly #buckets = new Map<string, { tokens: number; at: number }>();

  constructor(private readonly now: () => number = Date.now) {}

  /** Takes one request from `name`'s budget; returns the seconds to wait when there is none. */
  take(
    name: string,
    perMinute: number,
    burst = perMinute,
  ): { allowed: true } | { allowed: false; retryAfterS: number } {
    if (perMinute <= 0) return { allowed: true };
    const now = this.now();
    const ratePerMs = perMinute / 60_000;
    const bucket = this.#buckets.get(name) ?? { tokens: burst, at: now };
    bucket.tokens = Math.min(burst, bucket.tokens + (now - bucket.at) * ratePerMs);
    bucket.at = now;
    this.#buckets.set(name, bucket);
    if (bucket.tokens >= 1) {
      bucket.tokens -= 1;
      return { allowed: true };
    }
    return { allowed: false, retryAfterS: Math.ceil((1 - bucket.tokens) / ratePerMs / 1000) };
  }

  /** Drops `name`'s bucket (a name that is gone); it starts full if it comes back. */
  forget(name: string): void {
    this.#buckets.delete(name);
  }
}
