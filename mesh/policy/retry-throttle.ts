/** Options of {@link RetryThrottle}; the defaults are gRFC A6's example figures. */
export interface RetryThrottleOptions {
  /** Bucket size, 1–1000 in A6. Default 10. */
  maxTokens?: number;
  /** Tokens a success puts back, up to 3 decimals in A6. Default 0.1. */
  tokenRatio?: number;
}

/**
 * gRFC A6 retry throttling for one upstream service: the bucket starts full; every failed attempt
 * with a retryable status takes one token, every successful one gives back `tokenRatio`; while
 * tokens ≤ maxTokens / 2 no retries are made. Kept in thousandths of a token, as A6 suggests, so
 * that 5 + 0.1 is exactly 5.1.
 */
export class RetryThrottle {
  private milli: number;
  private readonly maxMilli: number;
  private readonly ratioMilli: number;

  constructor(opts: RetryThrottleOptions = {}) {
    this.maxMilli = Math.round((opts.maxTokens ?? 10) * 1000);
    this.ratioMilli = Math.round((opts.tokenRatio ?? 0.1) * 1000);
    this.milli = this.maxMilli;
  }

  /** Current token count. */
  get tokens(): number {
    return this.milli / 1000;
  }

  /** A failed attempt with a retryable status. */
  onFailure(): void {
    this.milli = Math.max(0, this.milli - 1000);
  }

  /** A successful attempt. */
  onSuccess(): void {
    this.milli = Math.min(this.maxMilli, this.milli + this.ratioMilli);
  }

  /** False while tokens ≤ maxTokens / 2. */
  allowsRetry(): boolean {
    return this.milli * 2 > this.maxMilli;
  }
}
