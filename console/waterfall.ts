/**
 * Waterfall layout of one trace, computed on the server so the page only draws boxes: spans in
 * depth-first order (children by start time), each with its depth and its horizontal position as
 * a percentage of the trace's duration.
 */
import type { SpanRecord } from "../mesh/telemetry/span-ring.js";

/** One bar of the waterfall. */
export interface WaterfallRow {
  spanId: string;
  parentSpanId?: string;
  /** 0 for roots; a span whose parent is missing from the trace is a root. */
  depth: number;
  name: string;
  service: string;
  instance?: string;
  kind: SpanRecord["kind"];
  status: SpanRecord["status"]["code"];
  statusMessage?: string;
  /** ms from the trace's start to this span's start. */
  startOffsetMs: number;
  durationMs: number;
  /** Left edge, 0–100 % of the trace's duration. */
  offsetPct: number;
  /** Width, 0–(100 − offsetPct) %. */
  widthPct: number;
}

/** A laid-out trace. */
export interface Waterfall {
  traceId: string;
  /** Epoch ms of the earliest span start. */
  startTime: number;
  durationMs: number;
  rows: WaterfallRow[];
}

const round = (n: number) => Math.round(n * 1000) / 1000;

/** Lays out the spans of one trace; spans of other traces in `spans` are the caller's mistake and are laid out too. */
export function layoutWaterfall(traceId: string, spans: readonly SpanRecord[]): Waterfall {
  if (spans.length === 0) return { traceId, startTime: 0, durationMs: 0, rows: [] };
  const start = Math.min(...spans.map((s) => s.startTime));
  const end = Math.max(...spans.map((s) => s.endTime));
  const total = Math.max(0, end - start);
  const byId = new Map(spans.map((s) => [s.spanId, s]));
  const children = new Map<string | undefined, SpanRecord[]>();
  for (const s of spans) {
    const parent = s.parentSpanId !== undefined && byId.has(s.parentSpanId) && s.parentSpanId !== s.spanId ? s.parentSpanId : undefined;
    const list = children.get(parent) ?? [];
    list.push(s);
    children.set(parent, list);
  }
  for (const list of children.values()) list.sort((a, b) => a.startTime - b.startTime || a.endTime - b.endTime);

  const rows: WaterfallRow[] = [];
  const placed = new Set<string>();
  const visit = (s: SpanRecord, depth: number) => {
    if (placed.has(s.spanId)) return;
    placed.add(s.spanId);
    const offset = total > 0 ? ((s.startTime - start) / total) * 100 : 0;
    const width = total > 0 ? Math.min(100 - offset, (Math.max(0, s.endTime - s.startTime) / total) * 100) : 0;
    rows.push({
      spanId: s.spanId,
      ...(s.parentSpanId !== undefined ? { parentSpanId: s.parentSpanId } : {}),
      depth,
      name: s.name,
      service: s.service,
      ...(s.instance !== undefined ? { instance: s.instance } : {}),
      kind: s.kind,
      status: s.status.code,
      ...(s.status.message !== undefined ? { statusMessage: s.status.message } : {}),
      startOffsetMs: round(s.startTime - start),
      durationMs: round(s.durationMs),
      offsetPct: round(offset),
      widthPct: round(Math.max(0, width)),
    });
    for (const c of children.get(s.spanId) ?? []) visit(c, depth + 1);
  };
  for (const r of children.get(undefined) ?? []) visit(r, 0);
  // Spans only reachable through a parent cycle (corrupt data): still shown, as roots.
  for (const s of [...spans].sort((a, b) => a.startTime - b.startTime)) visit(s, 0);
  return { traceId, startTime: start, durationMs: round(total), rows };
}
