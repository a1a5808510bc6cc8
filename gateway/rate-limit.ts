/** Options for {@link RateLimiter}. */
export interface RateLimitOptions {
  /** Tokens added per second per key (sustained rate); 0 disables limiting. */
  rps: number;
  /** Bucket size: how many calls a key may make at once after being idle. */
  burst: number;
  /** Most keys tracked at once (default 100,000: ~100 bytes each, ~10 MiB). */
  maxKeys?: number;
}

interface Bucket {
  tokens: number;
  last: number;
}

/**
 * Token buckets per caller key (a token's subject, or the client address when anonymous). A key
 * starts with a full bucket; each call takes one token; tokens refill at `rps` per second up to
 * `burst`. Idle keys are forgotten when the table fills (a full bucket and a missing one are the
 * same), so memory stays bounded however many addresses appear.
 */
export class RateLimiter {
  private readonly buckets = new Map<string, Bucket>();
  private readonly maxKeys: number;

  constructor(private readonly opts: RateLimitOptions) {
    this.maxKeys = opts.maxKeys ?? 100_000;
  }

  /** Takes a token for `key`: 0 if the call may proceed, else the ms until a token is available. */
  take(key: string, now: number = performance.now()): number {
    if (this.opts.rps <= 0) return 0;
    let b = this.buckets.get(key);
    if (!b) {
      if (this.buckets.size >= this.maxKeys) this.sweep(now);
      b = { tokens: this.opts.burst, last: now };
      this.buckets.set(key, b);
    } else {
      b.tokens = Math.min(this.opts.burst, b.tokens + ((now - b.last) * this.opts.rps) / 1000);
      b.last = now;
    }
    if (b.tokens >= 1) {
      b.tokens -= 1;
      return 0;
    }
    return Math.ceil(((1 - b.tokens) * 1000) / this.opts.rps);
  }

  /** Keys tracked now (for tests and metrics). */
  get size(): number {
    return this.buckets.size;
  }

  private sweep(now: number): void {
    const refillMs = (this.opts.burst * 1000) / this.opts.rps;
    for (const [k, b] of this.buckets) if (now - b.last >= refillMs) this.buckets.delete(k);
    if (this.buckets.size >= this.maxKeys) {
      // Every key is active: forget the oldest tenth (insertion order) rather than grow.
      let n = Math.ceil(this.maxKeys / 10);
      for (const k of this.buckets.keys()) {
        if (n-- <= 0) break;
        this.buckets.delete(k);
      }
    }
  }
}
