/**
 * Checkers over a recorded history. Each returns a human-readable failure (or nothing) so a
 * scenario collects every broken invariant instead of stopping at the first.
 */
import type { CallRecord } from "./history.js";

/** Calls that did not end OK. */
export const failed = (calls: CallRecord[]) => calls.filter((c) => c.code !== "ok");

/** Retries made (attempts beyond each call's first). A call refused before any attempt (open breaker) has 0 attempts and no retry. */
export const retries = (calls: CallRecord[]) => calls.reduce((n, c) => n + Math.max(0, c.attempts - 1), 0);

/** Attempts made in all. */
export const attempts = (calls: CallRecord[]) => calls.reduce((n, c) => n + c.attempts, 0);

/** Retries made, over calls made. */
export function retryRatio(calls: CallRecord[]): number {
  return calls.length === 0 ? 0 : retries(calls) / calls.length;
}

/** Counts calls by code. */
export function byCode(calls: CallRecord[]): Record<string, number> {
  const out: Record<string, number> = {};
  for (const c of calls) out[c.code] = (out[c.code] ?? 0) + 1;
  return out;
}

/** Calls that overlap the window [from, to] (started before `to` and ended after `from`). */
export const during = (calls: CallRecord[], from: number, to: number) => calls.filter((c) => c.start <= to && c.end >= from);

/** Latency percentile `p` (0–1) of the calls, in ms (nearest rank). */
export function percentile(calls: CallRecord[], p: number): number {
  if (calls.length === 0) return 0;
  const xs = calls.map((c) => c.end - c.start).sort((a, b) => a - b);
  return xs[Math.max(0, Math.ceil(xs.length * p) - 1)];
}

/** The defined failure lines of a list of checks. */
export const failuresOf = (...checks: Array<string | undefined>): string[] => checks.filter((f): f is string => f !== undefined);

/** "expected no failed calls" style check: returns a failure line when `n` is above `max`. */
export function atMost(what: string, n: number, max: number): string | undefined {
  return n <= max ? undefined : `${what}: ${n} > ${max}`;
}

/** Returns a failure line when `n` is below `min`. */
export function atLeast(what: string, n: number, min: number): string | undefined {
  return n >= min ? undefined : `${what}: ${n} < ${min}`;
}

/** A short description of the first few failed calls, for a failure message. */
export function sample(calls: CallRecord[], n = 3): string {
  return calls
    .slice(0, n)
    .map((c) => `#${c.id} ${c.method} ${c.code} after ${c.end - c.start} ms (${c.attempts} attempts${c.endpoint ? `, ${c.endpoint}` : ""})`)
    .join("; ");
}
