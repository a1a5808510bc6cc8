/** Exponential backoff bounds. */
export interface BackoffOptions {
  initialMs: number;
  maxMs: number;
}

/**
 * Delay before retry number `attempt` (1-based): exponential, capped, with "equal jitter"
 * (half fixed, half random). The random half spreads many relays/consumers that failed together
 * (a broker restart hits them all at once) so they do not retry in lock-step; the fixed half keeps
 * a floor so a failing dependency is never retried in a tight loop.
 */
export function backoffDelay(attempt: number, opts: BackoffOptions): number {
  const exp = Math.min(opts.maxMs, opts.initialMs * 2 ** Math.max(0, attempt - 1));
  return exp / 2 + Math.random() * (exp / 2);
}
