/**
 * Per-client token buckets for session reports: each caller address earns `ratePerSecond`
 * tokens a second up to `burst`, and a report costs one token, so a batch of 500 costs 500.
 * Lazy refill on use (no timers); a bucket is one small object per caller address.
 *
 * One limiter may serve both intakes, so a client cannot double its rate by using HTTP and gRPC.
 *
 * A bucket also remembers the ask it last refused, until it grants one: the listeners turn a
 * caller's new connections away at once while its budget could not pay for that ask
 * (`tokensToAdmit`). A caller refused a 1 MiB body (512 tokens) with 511 left would otherwise be
 * let in, parsed and refused again on every new connection, each costing the agent far more
 * than the caller.
 */

export interface RateLimiterOptions {
  ratePerSecond: number;
  /** Tokens a full bucket holds; default one second's worth. */
  burst?: number;
  /** Milliseconds on a monotonic clock; tests pass their own. */
  now?: () => number;
  /** Above this many tracked callers, buckets that are full again are forgotten. */
  maxClients?: number;
}

interface Bucket {
  tokens: number;
  at: number;
  /** Tokens of the last ask refused (at most the burst), 0 once an ask is granted. */
  refused: number;
}

export class ReportRateLimiter {
  readonly ratePerSecond: number;
  readonly burst: number;
  private readonly now: () => number;
  private readonly maxClients: number;
  private readonly buckets = new Map<string, Bucket>();

  constructor(options: RateLimiterOptions) {
    this.ratePerSecond = options.ratePerSecond;
    this.burst = Math.max(1, options.burst ?? options.ratePerSecond);
    this.now = options.now ?? (() => performance.now());
    this.maxClients = options.maxClients ?? 65_536;
  }

  /** Takes `n` tokens if all are there; takes none otherwise. */
  take(caller: string, n: number): boolean {
    const bucket = this.refill(caller);
    if (bucket.tokens < n) {
      bucket.refused = Math.min(n, this.burst);
      return false;
    }
    bucket.tokens -= n;
    bucket.refused = 0;
    return true;
  }

  /** Takes up to `n` tokens and says how many it took (the stream admits part of a batch). */
  takeUpTo(caller: string, n: number): number {
    const bucket = this.refill(caller);
    const taken = Math.min(n, Math.floor(bucket.tokens));
    bucket.tokens -= taken;
    return taken;
  }

  /**
   * Tokens `caller` must have for a new connection of its to be let in: one, or what its last
   * refused ask cost while no ask has been granted since; 0 when it has them now.
   */
  tokensToAdmit(caller: string): number {
    if (!this.buckets.has(caller)) return 0;
    const bucket = this.refill(caller);
    const needed = Math.max(1, bucket.refused);
    return bucket.tokens < needed ? needed : 0;
  }

  /** Whole seconds until `n` tokens are there (for Retry-After). */
  secondsUntil(caller: string, n: number): number {
    const bucket = this.refill(caller);
    const missing = Math.min(n, this.burst) - bucket.tokens;
    return missing <= 0 ? 0 : Math.max(1, Math.ceil(missing / this.ratePerSecond));
  }

  private refill(caller: string): Bucket {
    const now = this.now();
    let bucket = this.buckets.get(caller);
    if (bucket === undefined) {
      if (this.buckets.size >= this.maxClients) this.forgetIdle(now);
      bucket = { tokens: this.burst, at: now, refused: 0 };
      this.buckets.set(caller, bucket);
      return bucket;
    }
    const elapsed = now - bucket.at;
    if (elapsed > 0) {
      bucket.tokens = Math.min(this.burst, bucket.tokens + (elapsed * this.ratePerSecond) / 1000);
      bucket.at = now;
    }
    return bucket;
  }

  /** A bucket that would be full now is the same as no bucket. */
  private forgetIdle(now: number): void {
    for (const [caller, bucket] of this.buckets) {
      if (bucket.tokens + ((now - bucket.at) * this.ratePerSecond) / 1000 >= this.burst) this.buckets.delete(caller);
    }
    // Still full of busy callers: start over rather than grow without bound.
    if (this.buckets.size >= this.maxClients) this.buckets.clear();
  }
}
