import { EndpointStats } from "./endpoint-stats.js";

/** Tunables of {@link Balancer}; defaults follow Linkerd (load) and Envoy (outlier ejection). */
export interface BalancerOptions {
  /** Peak-EWMA decay window. Linkerd's default: 10 s. */
  decayMs?: number;
  /** RTT assumed for an endpoint with no observations yet; optimistic so new endpoints get traffic. */
  initialRttMs?: number;
  /** Consecutive failures that eject an endpoint. Envoy's default: 5. */
  consecutiveFailures?: number;
  /** Base ejection time, multiplied by the number of ejections. Envoy's default: 30 s. */
  baseEjectionMs?: number;
  /** Longest ejection. Envoy's default: 300 s. */
  maxEjectionMs?: number;
  /** Share of endpoints that may be ejected at once (at least one, never the last). Envoy: 10 %. */
  maxEjectionPercent?: number;
  /** Called when an endpoint is ejected or readmitted. */
  onEjection?: (key: string, ejected: boolean, untilMs: number) => void;
  /** Random source, for tests. */
  random?: () => number;
}

const DEFAULTS = {
  decayMs: 10_000,
  // 1 ms: loopback/LAN gRPC round trips are well under that, so a newcomer is tried soon.
  initialRttMs: 1,
  consecutiveFailures: 5,
  baseEjectionMs: 30_000,
  maxEjectionMs: 300_000,
  maxEjectionPercent: 10,
};

/** What the caller reports after an attempt on an endpoint. */
export type Outcome = "success" | "failure" | "neutral";

/**
 * Client-side balancing over a changing set of endpoints: power of two choices over
 * peak-EWMA latency × (outstanding + 1), and passive outlier ejection.
 */
export class Balancer {
  private readonly opts: typeof DEFAULTS & Pick<BalancerOptions, "onEjection" | "random">;
  private readonly stats = new Map<string, EndpointStats>();
  private keys: string[] = [];

  constructor(opts: BalancerOptions = {}) {
    this.opts = { ...DEFAULTS, ...opts };
  }

  /** Replaces the endpoint set, keeping the stats of endpoints that stay. */
  setEndpoints(keys: readonly string[]): void {
    const next = new Set(keys);
    for (const k of this.stats.keys()) if (!next.has(k)) this.stats.delete(k);
    for (const k of next) if (!this.stats.has(k)) this.stats.set(k, new EndpointStats(this.opts.initialRttMs, this.opts.decayMs));
    this.keys = [...next];
  }

  endpoints(): readonly string[] {
    return this.keys;
  }

  /** Keys currently ejected. */
  ejected(now = Date.now()): string[] {
    return this.keys.filter((k) => this.isEjected(this.stats.get(k)!, now));
  }

  /**
   * Picks an endpoint for the next attempt, avoiding `exclude` (endpoints already tried by this
   * call) when any other is available. Returns undefined when there are no endpoints at all.
   */
  pick(exclude?: ReadonlySet<string>, at?: number): string | undefined {
    const all = this.keys;
    if (all.length === 0) return undefined;
    // The common case, one healthy endpoint and nothing to avoid: no candidate lists to build.
    if (all.length === 1 && (exclude === undefined || exclude.size === 0) && this.stats.get(all[0])!.ejectedUntil === 0) return all[0];
    // Read the clock only past the fast path: ejection and load need it, the common case does not.
    const now = at ?? Date.now();
    // Candidates in order of preference: not avoided and available, not avoided, available, any.
    let candidates = all.filter((k) => !exclude?.has(k) && this.available(k, now));
    if (candidates.length === 0) candidates = all.filter((k) => !exclude?.has(k));
    if (candidates.length === 0) candidates = all.filter((k) => this.available(k, now));
    if (candidates.length === 0) candidates = all;
    let chosen: string;
    if (candidates.length === 1) {
      chosen = candidates[0];
    } else {
      const rnd = this.opts.random ?? Math.random;
      const i = Math.floor(rnd() * candidates.length);
      let j = Math.floor(rnd() * (candidates.length - 1));
      if (j >= i) j++;
      const a = candidates[i];
      const b = candidates[j];
      chosen = this.stats.get(a)!.cost(now) <= this.stats.get(b)!.cost(now) ? a : b;
    }
    const s = this.stats.get(chosen)!;
    if (s.ejectedUntil !== 0 && s.ejectedUntil <= now) s.probing = true;
    return chosen;
  }

  /** Marks the start of an attempt on `key`; returns the start time for {@link finish}. */
  start(key: string): number {
    const now = Date.now();
    const s = this.stats.get(key);
    if (s) {
      s.outstanding++;
      s.pendingStartSum += now;
    }
    return now;
  }

  /** Records the end of an attempt started with {@link start}. */
  finish(key: string, startedAt: number, outcome: Outcome): void {
    const s = this.stats.get(key);
    if (!s) return;
    const now = Date.now();
    if (s.outstanding > 0) {
      s.outstanding--;
      s.pendingStartSum = s.outstanding === 0 ? 0 : s.pendingStartSum - startedAt;
    }
    if (outcome === "neutral") {
      // An inconclusive probe (e.g. cancelled by the caller) lets the next call probe instead.
      s.probing = false;
      return;
    }
    s.observe(now - startedAt, now);
    if (outcome === "success") {
      s.consecutiveFailures = 0;
      if (s.ejectedUntil !== 0) {
        s.ejectedUntil = 0;
        s.probing = false;
        this.opts.onEjection?.(key, false, 0);
      }
      return;
    }
    s.consecutiveFailures++;
    const probeFailed = s.probing;
    if (probeFailed || (s.ejectedUntil === 0 && s.consecutiveFailures >= this.opts.consecutiveFailures && this.mayEject(now))) {
      s.timesEjected++;
      s.probing = false;
      s.ejectedUntil = now + Math.min(this.opts.baseEjectionMs * s.timesEjected, this.opts.maxEjectionMs);
      this.opts.onEjection?.(key, true, s.ejectedUntil);
    }
  }

  /** Load and ejection state of an endpoint, for metrics and the console. */
  describe(key: string): { ewmaMs: number; outstanding: number; ejected: boolean; consecutiveFailures: number } | undefined {
    const s = this.stats.get(key);
    if (!s) return undefined;
    return { ewmaMs: s.currentEwmaMs(), outstanding: s.outstanding, ejected: this.isEjected(s, Date.now()), consecutiveFailures: s.consecutiveFailures };
  }

  /** Ejected until a probe succeeds, even after the ejection time has run out. */
  private isEjected(s: EndpointStats, _now: number): boolean {
    return s.ejectedUntil !== 0;
  }

  /** Usable now: not ejected, or its ejection expired and no probe is in flight yet. */
  private available(key: string, now: number): boolean {
    const s = this.stats.get(key)!;
    if (s.ejectedUntil === 0) return true;
    return s.ejectedUntil <= now && !s.probing;
  }

  private mayEject(now: number): boolean {
    const ejectedNow = this.keys.filter((k) => this.isEjected(this.stats.get(k)!, now)).length;
    const limit = Math.max(1, Math.floor((this.keys.length * this.opts.maxEjectionPercent) / 100));
    // Never eject the last usable endpoint: a degraded answer beats none.
    return ejectedNow < limit && ejectedNow + 1 < this.keys.length;
  }
}
