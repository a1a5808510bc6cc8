import { SpanKind, SpanStatusCode, type AttributeValue } from "@opentelemetry/api";
import { hrTimeToMilliseconds } from "@opentelemetry/core";
import type { ReadableSpan, SpanProcessor } from "@opentelemetry/sdk-trace-base";

/** A finished span as the console and tests see it (times in epoch milliseconds). */
export interface SpanRecord {
  traceId: string;
  spanId: string;
  parentSpanId?: string;
  name: string;
  kind: "internal" | "server" | "client" | "producer" | "consumer";
  startTime: number;
  endTime: number;
  durationMs: number;
  attributes: Record<string, AttributeValue>;
  status: { code: "unset" | "ok" | "error"; message?: string };
  events: { name: string; time: number; attributes: Record<string, AttributeValue> }[];
  /** `service.name` of the process that recorded it. */
  service: string;
  /** `service.instance.id`, when set. */
  instance?: string;
}

const KINDS: Record<SpanKind, SpanRecord["kind"]> = {
  [SpanKind.INTERNAL]: "internal",
  [SpanKind.SERVER]: "server",
  [SpanKind.CLIENT]: "client",
  [SpanKind.PRODUCER]: "producer",
  [SpanKind.CONSUMER]: "consumer",
};

const STATUS: Record<SpanStatusCode, SpanRecord["status"]["code"]> = {
  [SpanStatusCode.UNSET]: "unset",
  [SpanStatusCode.OK]: "ok",
  [SpanStatusCode.ERROR]: "error",
};

function clean(attrs: Record<string, AttributeValue | undefined> | undefined): Record<string, AttributeValue> {
  const out: Record<string, AttributeValue> = {};
  if (attrs) for (const [k, v] of Object.entries(attrs)) if (v !== undefined) out[k] = v;
  return out;
}

/** Converts an SDK span into a plain {@link SpanRecord}. */
export function toSpanRecord(span: ReadableSpan): SpanRecord {
  const sc = span.spanContext();
  const startTime = hrTimeToMilliseconds(span.startTime);
  const endTime = hrTimeToMilliseconds(span.endTime);
  const res = span.resource.attributes;
  const instance = res["service.instance.id"];
  return {
    traceId: sc.traceId,
    spanId: sc.spanId,
    ...(span.parentSpanContext ? { parentSpanId: span.parentSpanContext.spanId } : {}),
    name: span.name,
    kind: KINDS[span.kind],
    startTime,
    endTime,
    durationMs: hrTimeToMilliseconds(span.duration),
    attributes: clean(span.attributes),
    status: { code: STATUS[span.status.code], ...(span.status.message ? { message: span.status.message } : {}) },
    events: span.events.map((e) => ({ name: e.name, time: hrTimeToMilliseconds(e.time), attributes: clean(e.attributes) })),
    service: String(res["service.name"] ?? "unknown_service"),
    ...(instance !== undefined ? { instance: String(instance) } : {}),
  };
}

/**
 * Keeps the last `capacity` finished spans in memory (oldest overwritten), so traces can be
 * inspected without a collector. Spans are stored as the SDK hands them over and converted only
 * when read: the hot path costs one array write.
 */
export class SpanRing implements SpanProcessor {
  private readonly spans: (ReadableSpan | undefined)[];
  private next = 0;
  private total = 0;

  constructor(readonly capacity: number) {
    if (!Number.isInteger(capacity) || capacity < 1) throw new Error(`span ring capacity must be a positive integer, got ${capacity}`);
    this.spans = new Array(capacity);
  }

  onStart(): void {}

  onEnd(span: ReadableSpan): void {
    this.spans[this.next] = span;
    this.next = (this.next + 1) % this.capacity;
    this.total++;
  }

  /** Spans ever recorded (including overwritten ones). */
  get recorded(): number {
    return this.total;
  }

  /** Finished spans, oldest first; only those that ended after `sinceMs` (epoch ms) when given. */
  records(sinceMs?: number): SpanRecord[] {
    const out: SpanRecord[] = [];
    for (let i = 0; i < this.capacity; i++) {
      const s = this.spans[(this.next + i) % this.capacity];
      if (!s) continue;
      if (sinceMs !== undefined && hrTimeToMilliseconds(s.endTime) <= sinceMs) continue;
      out.push(toSpanRecord(s));
    }
    return out;
  }

  clear(): void {
    this.spans.fill(undefined);
    this.next = 0;
  }

  forceFlush(): Promise<void> {
    return Promise.resolve();
  }

  shutdown(): Promise<void> {
    return Promise.resolve();
  }
}
