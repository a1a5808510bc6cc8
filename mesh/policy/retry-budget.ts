/** Options of {@link RetryBudget}; the defaults are Linkerd's. */
export interface RetryBudgetOptions {
  /** Retries allowed per request in the window. Linkerd: 0.2 (retries add at most 20 % load). */
  ratio?: number;
  /** Retries allowed regardless of traffic, so low-volume callers can still retry. Linkerd: 10/s. */
  minPerSecond?: number;
  /** How far back requests and retries are counted. Linkerd's ttl: 10 s. */
  windowMs?: number;
}

/** 10 buckets: the window slides in 1 s steps with the defaults, which keeps the counts cheap. */
const BUCKETS = 10;

/**
 * A Linkerd-style retry budget for one upstream service: over the last `windowMs`, retries may not
 * exceed `ratio` × requests plus `minPerSecond` × the seconds covered. The floor starts at one
 * second's worth and accrues from the budget's creation, so a fresh client cannot spend a whole
 * window's reserve at once: over any run of D seconds, retries ≤ ratio × requests + minPerSecond × (D + 1).
 */
export class RetryBudget {
  private readonly ratio: number;
  private readonly minPerSecond: number;
  private readonly bucketMs: number;
  private readonly windowMs: number;
  private readonly createdAt: number;
  private readonly slots = Array.from({ length: BUCKETS }, () => ({ epoch: -1, requests: 0, retries: 0 }));

  constructor(opts: RetryBudgetOptions = {}, now = Date.now()) {
    this.ratio = opts.ratio ?? 0.2;
    this.minPerSecond = opts.minPerSecond ?? 10;
    this.windowMs = opts.windowMs ?? 10_000;
    this.bucketMs = this.windowMs / BUCKETS;
    this.createdAt = now;
  }

  /** Counts one logical request (not its retries). */
  recordRequest(now = Date.now()): void {
    this.slot(now).requests++;
  }

  /** Takes one retry from the budget if there is room; false means: do not retry. */
  tryRetry(now = Date.now()): boolean {
    const epoch = Math.floor(now / this.bucketMs);
    let requests = 0;
    let retries = 0;
    for (const s of this.slots) {
      if (s.epoch > epoch - BUCKETS) {
        requests += s.requests;
        retries += s.retries;
      }
    }
    // One second's floor from the start, so a fresh client's first failing call can be retried.
    const coveredMs = Math.min(this.windowMs, now - this.createdAt + 1_000);
    const allowed = this.ratio * requests + (this.minPerSecond * coveredMs) / 1000;
    if (retries + 1 > allowed) return false;
    this.slot(now).retries++;
    return true;
  }

  private slot(now: number) {
    const epoch = Math.floor(now / this.bucketMs);
    const s = this.slots[epoch % BUCKETS];
    if (s.epoch !== epoch) {
      s.epoch = epoch;
      s.requests = 0;
      s.retries = 0;
    }
    return s;
  }
}
