/**
 * In-process rolling window of call outcomes and latencies per (kind, service, method), for the
 * console's `/metrics/summary`: rate, error ratio, p50 and p99 over the last minutes. Prometheus
 * counters are cumulative since start; this answers "how is it doing right now" without a
 * Prometheus server.
 */

// 1-minute buckets: the finest resolution a rate or an error ratio is stable at for a few req/s.
const BUCKET_MS = 60_000;
// 10 buckets = 10 minutes: spans a deploy or a fault test, and bounds memory per series.
export const WINDOW_MINUTES = 10;
// Latencies go into log-scale buckets instead of being kept: memory stays fixed under any load.
// 10 µs lower edge: below any RPC on these machines (a loopback call is ≥ 0.2 ms).
const MIN_MS = 0.01;
// 8 sub-buckets per power of two: a bucket is 2^(1/8) ≈ 9 % wide, so a percentile is ≤ 9 % high.
const SUB = 8;
// Up to 600 s (longest watch stream anyone would time): ceil(log2(600000 / 0.01) · 8) + 1.
const LATENCY_BUCKETS = Math.ceil(Math.log2(600_000 / MIN_MS) * SUB) + 1;
// Series beyond this are not tracked: a fuzzer hitting random routes cannot grow memory.
const MAX_SERIES = 1_000;

/** Which side recorded the call. */
export type CallKind = "server" | "client" | "http";

/** One series over the requested window. */
export interface SummaryEntry {
  kind: CallKind;
  /** Server: the gRPC service; client: the gRPC service called; http: "http". */
  service: string;
  /** gRPC method name, or the HTTP route. */
  method: string;
  /** Client calls: the logical service called (as in rpc_client_* metrics). */
  target?: string;
  requests: number;
  /** Requests per second over the window (or since the first request, if later). */
  ratePerSec: number;
  /** Calls that did not end OK (gRPC) or ended 5xx (HTTP). */
  errors: number;
  errorRatio: number;
  /** Null when no latency was recorded (streams only). */
  p50Ms: number | null;
  p99Ms: number | null;
  /** Calls per status (gRPC code name or HTTP status). */
  codes: Record<string, number>;
}

interface Bucket {
  minute: number;
  requests: number;
  errors: number;
  codes: Map<string, number>;
  latency: Uint32Array | undefined;
  latencyCount: number;
}

interface Series {
  kind: CallKind;
  service: string;
  method: string;
  target?: string;
  /** Time of the first recorded call (NaN before). */
  firstAt: number;
  buckets: (Bucket | undefined)[];
  handle: RollingSeries | undefined;
}

function latencyIndex(ms: number): number {
  if (!(ms > MIN_MS)) return 0;
  return Math.min(LATENCY_BUCKETS - 1, Math.ceil(Math.log2(ms / MIN_MS) * SUB));
}

function latencyUpper(i: number): number {
  return MIN_MS * 2 ** (i / SUB);
}

function quantile(counts: Uint32Array, total: number, q: number): number {
  const rank = Math.max(1, Math.ceil(q * total));
  let seen = 0;
  for (let i = 0; i < counts.length; i++) {
    seen += counts[i];
    if (seen >= rank) return Number(latencyUpper(i).toPrecision(3));
  }
  return Number(latencyUpper(counts.length - 1).toPrecision(3));
}

/**
 * One series of a {@link RollingStats}, resolved once by {@link RollingStats.series} so that a hot
 * path records without building a string key per call.
 */
export interface RollingSeries {
  /** Records one finished call; `durationMs` undefined for streams (their length is not latency). */
  record(code: string, isError: boolean, durationMs: number | undefined): void;
}

// The handle of a series past MAX_SERIES: records nothing.
const UNTRACKED: RollingSeries = { record: () => undefined };

/** Rolling per-method statistics: 1-minute buckets for the last 10 minutes. */
export class RollingStats {
  private readonly byKey = new Map<string, Series>();

  constructor(private readonly now: () => number = Date.now) {}

  /**
   * The series of (kind, service, method, target); record finished calls through it (keep the
   * handle per method: the lookup builds a key). Beyond 1,000 series the handle records nothing.
   */
  series(kind: CallKind, service: string, method: string, target?: string): RollingSeries {
    const key = `${kind}\u0000${target ?? ""}\u0000${service}\u0000${method}`;
    let s = this.byKey.get(key);
    if (!s) {
      if (this.byKey.size >= MAX_SERIES) return UNTRACKED;
      s = { kind, service, method, target, firstAt: NaN, buckets: new Array(WINDOW_MINUTES), handle: undefined };
      this.byKey.set(key, s);
    }
    return (s.handle ??= this.handleOf(s));
  }

  private handleOf(s: Series): RollingSeries {
    return { record: (code, isError, durationMs) => this.add(s, code, isError, durationMs) };
  }

  private add(s: Series, code: string, isError: boolean, durationMs: number | undefined): void {
    const now = this.now();
    // From the first call, not from when a handle was taken.
    if (Number.isNaN(s.firstAt)) s.firstAt = now;
    const minute = Math.floor(now / BUCKET_MS);
    const slot = minute % WINDOW_MINUTES;
    let b = s.buckets[slot];
    if (!b || b.minute !== minute) {
      b = { minute, requests: 0, errors: 0, codes: new Map(), latency: b?.latency, latencyCount: 0 };
      b.latency?.fill(0);
      s.buckets[slot] = b;
    }
    b.requests++;
    if (isError) b.errors++;
    b.codes.set(code, (b.codes.get(code) ?? 0) + 1);
    if (durationMs !== undefined) {
      b.latency ??= new Uint32Array(LATENCY_BUCKETS);
      b.latency[latencyIndex(durationMs)]++;
      b.latencyCount++;
    }
  }

  /** Statistics over the last `minutes` (1–10; the current, partial minute included). */
  summary(minutes = 5): SummaryEntry[] {
    const m = Math.min(WINDOW_MINUTES, Math.max(1, Math.floor(minutes)));
    const now = this.now();
    const current = Math.floor(now / BUCKET_MS);
    const windowStart = (current - m + 1) * BUCKET_MS;
    const out: SummaryEntry[] = [];
    for (const s of this.byKey.values()) {
      let requests = 0;
      let errors = 0;
      let latencyCount = 0;
      const codes: Record<string, number> = {};
      const latency = new Uint32Array(LATENCY_BUCKETS);
      for (const b of s.buckets) {
        if (!b || b.minute <= current - m || b.minute > current) continue;
        requests += b.requests;
        errors += b.errors;
        for (const [c, n] of b.codes) codes[c] = (codes[c] ?? 0) + n;
        if (b.latency) {
          for (let i = 0; i < LATENCY_BUCKETS; i++) latency[i] += b.latency[i];
          latencyCount += b.latencyCount;
        }
      }
      if (requests === 0) continue;
      // At least 1 s, so a burst in the first instant does not read as an absurd rate.
      const seconds = Math.max(1, (now - Math.max(windowStart, s.firstAt)) / 1000);
      out.push({
        kind: s.kind,
        service: s.service,
        method: s.method,
        ...(s.target !== undefined ? { target: s.target } : {}),
        requests,
        ratePerSec: Number((requests / seconds).toPrecision(4)),
        errors,
        errorRatio: Number((errors / requests).toPrecision(4)),
        p50Ms: latencyCount ? quantile(latency, latencyCount, 0.5) : null,
        p99Ms: latencyCount ? quantile(latency, latencyCount, 0.99) : null,
        codes,
      });
    }
    return out;
  }
}
