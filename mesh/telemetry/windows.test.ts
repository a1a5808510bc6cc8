import { context, SpanKind, SpanStatusCode, trace } from "@opentelemetry/api";
import { resourceFromAttributes } from "@opentelemetry/resources";
import { BasicTracerProvider, type ReadableSpan } from "@opentelemetry/sdk-trace-base";
import { RollingStats, SpanRing, toSpanRecord } from "./index.js";

describe("SpanRing", () => {
  it("keeps only the newest `capacity` spans, oldest first", () => {
    const ring = new SpanRing(5);
    const provider = new BasicTracerProvider({ spanProcessors: [ring] });
    const tracer = provider.getTracer("ring-test");
    for (let i = 0; i < 12; i++) tracer.startSpan(`span-${i}`).end();
    const records = ring.records();
    expect(records.map((r) => r.name)).toEqual(["span-7", "span-8", "span-9", "span-10", "span-11"]);
    expect(ring.recorded).toBe(12);
    expect(records[0]).toMatchObject({ kind: "internal", status: { code: "unset" }, service: expect.any(String) });
    expect(() => new SpanRing(0)).toThrow();
  });

  it("returns only spans that ended after `since`", () => {
    const ring = new SpanRing(10);
    const tracer = new BasicTracerProvider({ spanProcessors: [ring] }).getTracer("ring-test");
    const t0 = Date.now() - 10_000;
    tracer.startSpan("old", { startTime: new Date(t0) }).end(new Date(t0 + 2_000));
    tracer.startSpan("new", { startTime: new Date(t0) }).end(new Date(t0 + 4_000));
    expect(ring.records(t0 + 3_000).map((r) => r.name)).toEqual(["new"]);
  });

  it("serves exactly what the SDK span held: ids, parent, kind, times, status, attributes, events, resource", () => {
    const ring = new SpanRing(10);
    const ended: ReadableSpan[] = [];
    const keep = { onStart() {}, onEnd: (s: ReadableSpan) => void ended.push(s), forceFlush: async () => {}, shutdown: async () => {} };
    const resource = resourceFromAttributes({ "service.name": "ring", "service.instance.id": "ring-1" });
    const tracer = new BasicTracerProvider({ resource, spanProcessors: [ring, keep] }).getTracer("ring-test");
    const parent = tracer.startSpan("parent", { kind: SpanKind.SERVER, attributes: { "rpc.method": "Get", "rpc.grpc.status_code": 5 } });
    const child = tracer.startSpan("child", { kind: SpanKind.CLIENT }, trace.setSpan(context.active(), parent));
    child.addEvent("attempt", { "meshwork.attempt": 1, tags: ["a", "b"] });
    child.setStatus({ code: SpanStatusCode.ERROR, message: "broker down" });
    child.end();
    parent.setStatus({ code: SpanStatusCode.OK });
    parent.end();
    tracer.startSpan("producer", { kind: SpanKind.PRODUCER }).end();
    const records = ring.records();
    expect(records).toEqual(ended.map(toSpanRecord));
    // Same JSON too (key order included): /spans serves these as they are.
    expect(JSON.stringify(records)).toBe(JSON.stringify(ended.map(toSpanRecord)));
    expect(records[0]).toMatchObject({ parentSpanId: parent.spanContext().spanId, kind: "client", status: { code: "error", message: "broker down" }, instance: "ring-1" });
    ring.clear();
    expect(ring.records()).toEqual([]);
  });
});

describe("RollingStats", () => {
  it("computes rate, error ratio and percentiles within the bucket precision", () => {
    let now = 10 * 60_000;
    const stats = new RollingStats(() => now);
    // 1 … 100 ms, one each: p50 = 50 ms, p99 = 99 ms.
    for (let ms = 1; ms <= 100; ms++) stats.series("server", "s.v1.S", "Get").record(ms % 10 === 0 ? "NotFound" : "OK", ms % 10 === 0, ms);
    now += 30_000;
    const [row] = stats.summary(1);
    expect(row).toMatchObject({ kind: "server", service: "s.v1.S", method: "Get", requests: 100, errors: 10, errorRatio: 0.1, codes: { OK: 90, NotFound: 10 } });
    expect(row.ratePerSec).toBeCloseTo(100 / 30, 2);
    // Log buckets are 2^(1/8) wide: a percentile reads at most ~9 % high, never low.
    expect(row.p50Ms!).toBeGreaterThanOrEqual(50);
    expect(row.p50Ms!).toBeLessThanOrEqual(50 * 1.091);
    expect(row.p99Ms!).toBeGreaterThanOrEqual(99);
    expect(row.p99Ms!).toBeLessThanOrEqual(99 * 1.091);
  });

  it("forgets minutes outside the window and reuses their buckets", () => {
    let now = 0;
    const stats = new RollingStats(() => now);
    stats.series("client", "s.v1.S", "Get", "s").record("OK", false, 5);
    now += 3 * 60_000;
    stats.series("client", "s.v1.S", "Get", "s").record("Unavailable", true, 7);
    expect(stats.summary(10)[0]).toMatchObject({ requests: 2, errors: 1, target: "s" });
    expect(stats.summary(1)[0]).toMatchObject({ requests: 1, errors: 1, p50Ms: expect.any(Number) });
    // Ten minutes later the first bucket's slot is reused for a new minute.
    now += 7 * 60_000;
    stats.series("client", "s.v1.S", "Get", "s").record("OK", false, 1);
    const row = stats.summary(10)[0];
    expect(row).toMatchObject({ requests: 2, errors: 1 });
    expect(row.p50Ms!).toBeLessThan(1.1);
  });

  it("counts streams without latency", () => {
    const stats = new RollingStats(() => 0);
    stats.series("server", "s.v1.S", "Watch").record("OK", false, undefined);
    expect(stats.summary(1)[0]).toMatchObject({ requests: 1, p50Ms: null, p99Ms: null });
  });
});
