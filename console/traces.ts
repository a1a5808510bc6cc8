/**
 * Recent traces for the console: spans fetched from every instance's `/spans` are merged here by
 * trace id (each process only knows its own spans), bounded, and summarised for the list.
 */
import type { SpanRecord } from "../mesh/telemetry/span-ring.js";

/** One line of the recent-traces list. */
export interface TraceSummary {
  traceId: string;
  /** Name of the root span (the earliest span whose parent is not in the trace). */
  rootName: string;
  /** Service that recorded the root span. */
  rootService: string;
  /** Services with at least one span in the trace, in order of their first span. */
  services: string[];
  spanCount: number;
  /** Epoch ms of the earliest span start. */
  startTime: number;
  /** Latest span end minus earliest span start. */
  durationMs: number;
  /** "error" when any span has an error status. */
  status: "ok" | "error";
  errorCount: number;
}

interface Trace {
  spans: Map<string, SpanRecord>;
  startTime: number;
}

// 50 traces: what fits on one screen of the list with room to scroll back over the last few
// seconds of a busy mesh; older ones are a tracing backend's job.
export const DEFAULT_MAX_TRACES = 50;
// A checkout is ~10–15 spans; 500 bounds a runaway trace (a long stream with many events, a loop)
// without cutting any real request short.
export const DEFAULT_MAX_SPANS_PER_TRACE = 500;

// Health checks are answered by the gRPC health service, or by the gateway's /healthz route.
const HEALTH_SERVICE = "grpc.health.v1.Health";
const HEALTH_PATHS = ["/healthz", `/${HEALTH_SERVICE}/`];

/**
 * A health check nobody traced: the console's own (one per instance per poll), a launcher's or an
 * orchestrator's probe. Each would be a one-span trace of its own and push real requests out of the
 * recent traces within a minute, so {@link TraceStore} leaves them out. A check made inside a
 * traced request (it has a parent) is part of that request and is kept.
 */
export function isHealthProbe(s: SpanRecord): boolean {
  if (s.parentSpanId !== undefined) return false;
  if (s.attributes["rpc.service"] === HEALTH_SERVICE) return true;
  const path = s.attributes["url.path"];
  return typeof path === "string" && HEALTH_PATHS.some((p) => (p.endsWith("/") ? path.startsWith(p) : path === p));
}

/** The root of a set of spans: the earliest whose parent is absent (the caller was not traced, or its spans are gone). */
export function rootSpan(spans: readonly SpanRecord[]): SpanRecord | undefined {
  const ids = new Set(spans.map((s) => s.spanId));
  let root: SpanRecord | undefined;
  for (const s of spans) {
    const isRoot = s.parentSpanId === undefined || !ids.has(s.parentSpanId);
    if (isRoot && (root === undefined || s.startTime < root.startTime)) root = s;
  }
  return root;
}

/** Summarises one trace's spans (any order). */
export function summarizeTrace(traceId: string, spans: readonly SpanRecord[]): TraceSummary {
  const sorted = [...spans].sort((a, b) => a.startTime - b.startTime);
  const root = rootSpan(sorted);
  const services: string[] = [];
  let start = Infinity;
  let end = -Infinity;
  let errorCount = 0;
  for (const s of sorted) {
    if (!services.includes(s.service)) services.push(s.service);
    start = Math.min(start, s.startTime);
    end = Math.max(end, s.endTime);
    if (s.status.code === "error") errorCount++;
  }
  return {
    traceId,
    rootName: root?.name ?? "",
    rootService: root?.service ?? "",
    services,
    spanCount: sorted.length,
    startTime: sorted.length ? start : 0,
    durationMs: sorted.length ? Math.max(0, end - start) : 0,
    status: errorCount > 0 ? "error" : "ok",
    errorCount,
  };
}

/**
 * The last `maxTraces` traces by start time, grouped from spans that arrive in any order and more
 * than once (spans are deduplicated by span id). A late span of a trace already evicted makes it
 * reappear only if it is still among the newest. Untraced health probes ({@link isHealthProbe})
 * are not kept.
 */
export class TraceStore {
  private readonly traces = new Map<string, Trace>();

  constructor(
    readonly maxTraces = DEFAULT_MAX_TRACES,
    readonly maxSpansPerTrace = DEFAULT_MAX_SPANS_PER_TRACE,
  ) {}

  /** Adds spans; returns true when any was new. */
  add(spans: Iterable<SpanRecord>): boolean {
    let changed = false;
    for (const s of spans) {
      if (isHealthProbe(s)) continue;
      let t = this.traces.get(s.traceId);
      if (!t) {
        t = { spans: new Map(), startTime: s.startTime };
        this.traces.set(s.traceId, t);
      }
      if (t.spans.has(s.spanId) || t.spans.size >= this.maxSpansPerTrace) continue;
      t.spans.set(s.spanId, s);
      t.startTime = Math.min(t.startTime, s.startTime);
      changed = true;
    }
    if (this.traces.size > this.maxTraces) {
      const byAge = [...this.traces].sort(([, a], [, b]) => a.startTime - b.startTime);
      for (const [id] of byAge.slice(0, this.traces.size - this.maxTraces)) this.traces.delete(id);
    }
    return changed;
  }

  /** Summaries, newest first. */
  list(): TraceSummary[] {
    return [...this.traces]
      .map(([id, t]) => summarizeTrace(id, [...t.spans.values()]))
      .sort((a, b) => b.startTime - a.startTime || (a.traceId < b.traceId ? -1 : 1));
  }

  /** The spans of one trace, by start time; undefined when unknown. */
  get(traceId: string): SpanRecord[] | undefined {
    const t = this.traces.get(traceId);
    return t && [...t.spans.values()].sort((a, b) => a.startTime - b.startTime);
  }

  get size(): number {
    return this.traces.size;
  }
}
