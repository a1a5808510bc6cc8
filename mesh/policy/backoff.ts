/** Exponential backoff between retry attempts (gRFC A6). */
export interface BackoffOptions {
  /** Upper bound of the first retry's delay. */
  initialMs: number;
  /** Cap of the upper bound. */
  maxMs: number;
  /** Growth of the upper bound per retry. */
  multiplier: number;
}

/** The retry policy of gRFC A6's example service config: 0.1 s initial, ×2, capped at 1 s. */
export const DEFAULT_BACKOFF: BackoffOptions = { initialMs: 100, maxMs: 1_000, multiplier: 2 };

/**
 * Delay before retry `n` (1 = the first retry) with full jitter, exactly as A6 specifies:
 * `random(0, min(initial · multiplier^(n−1), max))`. (cockatiel's fullJitterGenerator ignores the
 * multiplier and always doubles, so the one-line formula is kept here.)
 */
export function retryBackoffMs(n: number, opts: BackoffOptions = DEFAULT_BACKOFF, random: () => number = Math.random): number {
  const ceiling = Math.min(opts.initialMs * opts.multiplier ** (n - 1), opts.maxMs);
  return random() * ceiling;
}
