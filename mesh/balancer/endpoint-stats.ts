// An observation weighs at least 5 %: 20 fast answers cut a spike by ~64 %, 60 by ~95 %.
const MAX_WEIGHT_OF_PAST = 0.95;

/**
 * Per-endpoint load and health as the client sees it: peak-EWMA latency and requests in flight
 * (Linkerd's load metric), plus the consecutive-failure state that drives outlier ejection
 * (Envoy's outlier detection).
 */
export class EndpointStats {
  /** Peak-EWMA round-trip time in ms. */
  private ewmaMs: number;
  private lastUpdate: number;
  /** Requests sent and not yet answered. */
  outstanding = 0;
  /** Sum of the start times of the outstanding requests, for their average age. */
  pendingStartSum = 0;
  consecutiveFailures = 0;
  /** How often this endpoint was ejected; the ejection time grows with it. */
  timesEjected = 0;
  /** Epoch ms until which the endpoint is ejected (0 = not ejected). */
  ejectedUntil = 0;
  /** After an ejection expires one probe is let through; others wait for its verdict. */
  probing = false;

  constructor(
    initialRttMs: number,
    private readonly decayMs: number,
    now = Date.now(),
  ) {
    this.ewmaMs = initialRttMs;
    this.lastUpdate = now;
  }

  /** Load score for power-of-two-choices: lower is better. */
  cost(now = Date.now()): number {
    // Decay toward zero while idle so that a once-slow endpoint gets another look (Linkerd does the same).
    const w = Math.exp(-(now - this.lastUpdate) / this.decayMs);
    // Requests still pending are at least as slow as their age: a newly slow endpoint is penalised
    // while its first slow answers are outstanding, not only after they arrive.
    const pendingAge = this.outstanding > 0 ? now - this.pendingStartSum / this.outstanding : 0;
    return Math.max(this.ewmaMs * w, pendingAge) * (this.outstanding + 1);
  }

  /** Records one observed latency: peaks are taken at once, improvements decay in. */
  observe(rttMs: number, now = Date.now()): void {
    if (rttMs > this.ewmaMs) {
      this.ewmaMs = rttMs;
    } else {
      // Time-based decay as in Linkerd, but every observation moves the average at least 5 %:
      // under heavy traffic one stalled call (a GC pause, a busy host) is forgotten after some
      // tens of fast answers instead of skewing the choice for the whole decay window.
      const w = Math.min(Math.exp(-(now - this.lastUpdate) / this.decayMs), MAX_WEIGHT_OF_PAST);
      this.ewmaMs = this.ewmaMs * w + rttMs * (1 - w);
    }
    this.lastUpdate = now;
  }

  currentEwmaMs(): number {
    return this.ewmaMs;
  }
}
