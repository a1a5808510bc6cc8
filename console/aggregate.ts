/**
 * Pure aggregation for the console: combining the per-instance `/metrics/summary` entries of a
 * service into one line, and the per-service history the sparklines draw.
 */
import { Code, ConnectError } from "@connectrpc/connect";
import type { SummaryEntry } from "../mesh/telemetry/rolling-stats.js";

/** Rate, errors and latency of a set of calls over the summary window. */
export interface Stats {
  requests: number;
  errors: number;
  ratePerSec: number;
  errorRatio: number;
  /** Request-weighted mean of the parts' medians (percentiles cannot be merged exactly). */
  p50Ms: number | null;
  /** The highest p99 of the parts: an upper bound of the combined p99. */
  p99Ms: number | null;
}

/** Stats of one method of a service, over all its instances. */
export interface MethodStats extends Stats {
  /** Full gRPC service name ("catalog.v1.CatalogService"), or "http" for gateway routes. */
  service: string;
  method: string;
}

/** One sparkline point: the service's stats at one poll. */
export interface HistoryPoint {
  /** Epoch ms of the poll. */
  t: number;
  ratePerSec: number;
  errorRatio: number;
  p50Ms: number | null;
  p99Ms: number | null;
}

const precise = (n: number) => Number(n.toPrecision(4));

/**
 * Combines summary entries (from one or many instances) into one {@link Stats}; null when there
 * were no requests. Rates and counts add up; p50 is request-weighted, p99 the maximum.
 */
export function combineStats(entries: readonly SummaryEntry[]): Stats | null {
  let requests = 0;
  let errors = 0;
  let rate = 0;
  let p50Weighted = 0;
  let p50Weight = 0;
  let p99: number | null = null;
  for (const e of entries) {
    if (e.requests <= 0) continue;
    requests += e.requests;
    errors += e.errors;
    rate += e.ratePerSec;
    if (e.p50Ms !== null) {
      p50Weighted += e.p50Ms * e.requests;
      p50Weight += e.requests;
    }
    if (e.p99Ms !== null) p99 = Math.max(p99 ?? 0, e.p99Ms);
  }
  if (requests === 0) return null;
  return {
    requests,
    errors,
    ratePerSec: precise(rate),
    errorRatio: precise(errors / requests),
    p50Ms: p50Weight > 0 ? precise(p50Weighted / p50Weight) : null,
    p99Ms: p99,
  };
}

/** The calls a service handled (server side and gateway routes), out of summary entries. */
export function servedEntries(entries: readonly SummaryEntry[]): SummaryEntry[] {
  return entries.filter((e) => e.kind === "server" || e.kind === "http");
}

/** Per-method stats over the served entries of all instances, sorted by service then method. */
export function methodStats(entries: readonly SummaryEntry[]): MethodStats[] {
  const groups = new Map<string, SummaryEntry[]>();
  for (const e of servedEntries(entries)) {
    const key = `${e.service}\u0000${e.method}`;
    const g = groups.get(key) ?? [];
    g.push(e);
    groups.set(key, g);
  }
  const out: MethodStats[] = [];
  for (const g of groups.values()) {
    const stats = combineStats(g);
    if (stats) out.push({ service: g[0].service, method: g[0].method, ...stats });
  }
  return out.sort((a, b) => a.service.localeCompare(b.service) || a.method.localeCompare(b.method));
}

/** Client-side stats of the calls to one logical `target`. */
export function clientStats(entries: readonly SummaryEntry[], target: string): Stats | null {
  return combineStats(entries.filter((e) => e.kind === "client" && e.target === target));
}

/** A fixed-size ring of history points, oldest first. */
export class History {
  private readonly points: HistoryPoint[] = [];

  constructor(readonly capacity: number) {
    if (!Number.isInteger(capacity) || capacity < 1) throw new ConnectError(`history capacity must be a positive integer, got ${capacity}`, Code.InvalidArgument);
  }

  /** Appends the point for `stats` (zeros/null when idle). */
  push(t: number, stats: Stats | null): void {
    this.points.push({ t, ratePerSec: stats?.ratePerSec ?? 0, errorRatio: stats?.errorRatio ?? 0, p50Ms: stats?.p50Ms ?? null, p99Ms: stats?.p99Ms ?? null });
    if (this.points.length > this.capacity) this.points.splice(0, this.points.length - this.capacity);
  }

  toJSON(): HistoryPoint[] {
    return [...this.points];
  }
}
