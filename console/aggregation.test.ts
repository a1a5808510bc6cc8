import { Code } from "@connectrpc/connect";
import type { SummaryEntry } from "../mesh/telemetry/rolling-stats.js";
import type { SpanRecord } from "../mesh/telemetry/span-ring.js";
import { clientStats, combineStats, History, methodStats } from "./aggregate.js";
import { instanceGauges, parsePrometheusText, parseSampleLine } from "./prometheus.js";
import { isHealthProbe, rootSpan, summarizeTrace, TraceStore } from "./traces.js";
import { layoutWaterfall } from "./waterfall.js";

// What mesh/telemetry serves for a caller with a breaker and an outbox (abridged, real format).
const PAGE = `# HELP target_info Target metadata
# TYPE target_info gauge
target_info{service_name="catalog",service_instance_id="catalog-1",service_version="0.1.0"} 1
# TYPE rpc_server_requests_total counter
rpc_server_requests_total{service="catalog.v1.CatalogService",method="GetProduct",code="OK"} 17
rpc_server_duration_seconds_bucket{service="catalog.v1.CatalogService",method="GetProduct",le="+Inf"} 17
# TYPE rpc_client_known_endpoints gauge
rpc_client_known_endpoints{target="inventory"} 3
rpc_client_ejected_endpoints{target="inventory"} 1
rpc_client_breaker_state{target="inventory"} 1
rpc_client_known_endpoints{target="payments"} 2
rpc_client_ejected_endpoints{target="payments"} 0
rpc_client_breaker_state{target="payments"} 2
meshwork_outbox_backlog 12
meshwork_dlq_messages{stream="ORDERS_DLQ"} 2
meshwork_dlq_messages{stream="PAYMENTS_DLQ"} 5
`;

describe("Prometheus text", () => {
  test("parses names, labels with escapes, special values and timestamps; skips comments and junk", () => {
    expect(parseSampleLine('a_b{x="1",y="q\\"uo\\\\te\\nnl"} 2.5')).toEqual({ name: "a_b", labels: { x: "1", y: 'q"uo\\te\nnl' }, value: 2.5 });
    expect(parseSampleLine("up 1 1700000000000")).toEqual({ name: "up", labels: {}, value: 1 });
    expect(parseSampleLine('h_bucket{le="+Inf"} +Inf')?.value).toBe(Infinity);
    expect(parseSampleLine("x -Inf")?.value).toBe(-Infinity);
    expect(parseSampleLine("x NaN")?.value).toBeNaN();
    expect(parseSampleLine('x{a="1",} 3')).toEqual({ name: "x", labels: { a: "1" }, value: 3 });
    expect(parseSampleLine('x{a="},b"} 4')).toEqual({ name: "x", labels: { a: "},b" }, value: 4 });
    for (const junk of ["# HELP x y", "", "   ", "x", "x{a=1} 2", 'x{a="1" 2', "x abc", "1x 2"]) expect(parseSampleLine(junk)).toBeUndefined();
  });

  test("a page gives every sample in order", () => {
    const samples = parsePrometheusText(PAGE);
    expect(samples.map((s) => s.name)).toEqual([
      "target_info",
      "rpc_server_requests_total",
      "rpc_server_duration_seconds_bucket",
      ...["inventory", "payments"].flatMap(() => ["rpc_client_known_endpoints", "rpc_client_ejected_endpoints", "rpc_client_breaker_state"]),
      "meshwork_outbox_backlog",
      "meshwork_dlq_messages",
      "meshwork_dlq_messages",
    ]);
    expect(samples[0]).toEqual({ name: "target_info", labels: { service_name: "catalog", service_instance_id: "catalog-1", service_version: "0.1.0" }, value: 1 });
    expect(samples[2].labels.le).toBe("+Inf");
  });

  test("instance gauges: breaker names, ejected/known per target, outbox, DLQ summed over streams", () => {
    expect(instanceGauges(parsePrometheusText(PAGE))).toEqual({
      clients: [
        { target: "inventory", breaker: "half-open", ejectedEndpoints: 1, knownEndpoints: 3 },
        { target: "payments", breaker: "open", ejectedEndpoints: 0, knownEndpoints: 2 },
      ],
      outboxBacklog: 12,
      dlqMessages: 7,
    });
  });

  test("absent gauges are null, not zero; an unknown breaker value says so", () => {
    const g = instanceGauges(parsePrometheusText('rpc_client_known_endpoints{target="cart"} 2\nrpc_client_breaker_state{target="x"} 7\n'));
    expect(g.outboxBacklog).toBeNull();
    expect(g.dlqMessages).toBeNull();
    expect(g.clients).toEqual([
      { target: "cart", breaker: null, ejectedEndpoints: null, knownEndpoints: 2 },
      { target: "x", breaker: "unknown", ejectedEndpoints: null, knownEndpoints: null },
    ]);
  });
});

function entry(over: Partial<SummaryEntry>): SummaryEntry {
  return { kind: "server", service: "catalog.v1.CatalogService", method: "GetProduct", requests: 10, ratePerSec: 1, errors: 0, errorRatio: 0, p50Ms: 5, p99Ms: 20, codes: { OK: 10 }, ...over };
}

describe("stats aggregation", () => {
  test("rates and counts add up, p50 is request-weighted, p99 the maximum", () => {
    const stats = combineStats([entry({ requests: 30, ratePerSec: 3, errors: 3, p50Ms: 2, p99Ms: 10 }), entry({ requests: 10, ratePerSec: 1, errors: 1, p50Ms: 10, p99Ms: 50 })]);
    expect(stats).toEqual({ requests: 40, errors: 4, ratePerSec: 4, errorRatio: 0.1, p50Ms: 4, p99Ms: 50 });
  });

  test("no requests → null; streams without latency → null percentiles", () => {
    expect(combineStats([])).toBeNull();
    expect(combineStats([entry({ requests: 0 })])).toBeNull();
    expect(combineStats([entry({ p50Ms: null, p99Ms: null })])).toMatchObject({ requests: 10, p50Ms: null, p99Ms: null });
  });

  test("methods group served calls across instances; client calls are kept per target", () => {
    const entries = [
      entry({ method: "GetProduct", requests: 10, ratePerSec: 1 }),
      entry({ method: "GetProduct", requests: 20, ratePerSec: 2 }),
      entry({ method: "ListProducts", requests: 5, ratePerSec: 0.5 }),
      entry({ kind: "client", service: "inventory.v1.InventoryService", method: "GetStock", target: "inventory", requests: 8, ratePerSec: 0.8, errors: 2 }),
      entry({ kind: "http", service: "http", method: "GET /v1/products", requests: 4, ratePerSec: 0.4 }),
    ];
    expect(methodStats(entries).map((m) => [m.service, m.method, m.requests, m.ratePerSec])).toEqual([
      ["catalog.v1.CatalogService", "GetProduct", 30, 3],
      ["catalog.v1.CatalogService", "ListProducts", 5, 0.5],
      ["http", "GET /v1/products", 4, 0.4],
    ]);
    expect(clientStats(entries, "inventory")).toMatchObject({ requests: 8, errors: 2, errorRatio: 0.25 });
    expect(clientStats(entries, "payments")).toBeNull();
  });

  test("history keeps the newest points up to its capacity; idle polls read as zero", () => {
    const h = new History(3);
    for (let t = 1; t <= 5; t++) h.push(t, t === 4 ? null : combineStats([entry({ ratePerSec: t })]));
    expect(h.toJSON()).toEqual([
      { t: 3, ratePerSec: 3, errorRatio: 0, p50Ms: 5, p99Ms: 20 },
      { t: 4, ratePerSec: 0, errorRatio: 0, p50Ms: null, p99Ms: null },
      { t: 5, ratePerSec: 5, errorRatio: 0, p50Ms: 5, p99Ms: 20 },
    ]);
    expect(() => new History(0)).toThrow(expect.objectContaining({ code: Code.InvalidArgument }));
  });
});

let nextId = 0;
function span(over: Partial<SpanRecord> & { start: number; end: number }): SpanRecord {
  const { start, end, ...rest } = over;
  return {
    traceId: "t1",
    spanId: `s${++nextId}`,
    name: "svc/Method",
    kind: "server",
    startTime: start,
    endTime: end,
    durationMs: end - start,
    attributes: {},
    status: { code: "unset" },
    events: [],
    service: "catalog",
    ...rest,
  };
}

/** A → B: catalog server, its client span to inventory, inventory server (as three processes would report them). */
function twoHops(traceId: string, t0: number) {
  const server = span({ traceId, spanId: `${traceId}-a`, start: t0, end: t0 + 100, name: "catalog.v1.CatalogService/GetProduct" });
  const client = span({ traceId, spanId: `${traceId}-b`, parentSpanId: server.spanId, kind: "client", start: t0 + 10, end: t0 + 90, name: "inventory.v1.InventoryService/GetStock" });
  const remote = span({ traceId, spanId: `${traceId}-c`, parentSpanId: client.spanId, start: t0 + 20, end: t0 + 70, service: "inventory", instance: "inventory-2", name: "inventory.v1.InventoryService/GetStock" });
  return { server, client, remote };
}

describe("trace grouping", () => {
  test("spans from several instances merge by trace id, duplicates count once", () => {
    const store = new TraceStore();
    const a = twoHops("t-a", 1_000);
    const b = twoHops("t-b", 2_000);
    expect(store.add([a.server, a.client, b.server])).toBe(true);
    expect(store.add([a.remote, b.remote, b.client, a.server])).toBe(true);
    expect(store.add([a.server])).toBe(false);
    const list = store.list();
    expect(list.map((t) => [t.traceId, t.spanCount])).toEqual([
      ["t-b", 3],
      ["t-a", 3],
    ]);
    expect(list[1]).toEqual({
      traceId: "t-a",
      rootName: "catalog.v1.CatalogService/GetProduct",
      rootService: "catalog",
      services: ["catalog", "inventory"],
      spanCount: 3,
      startTime: 1_000,
      durationMs: 100,
      status: "ok",
      errorCount: 0,
    });
    expect(store.get("t-a")!.map((s) => s.spanId)).toEqual(["t-a-a", "t-a-b", "t-a-c"]);
    expect(store.get("nope")).toBeUndefined();
  });

  test("keeps the newest traces by start time and bounds spans per trace", () => {
    const store = new TraceStore(2, 2);
    for (const [id, t0] of [["old", 1_000], ["new", 3_000], ["mid", 2_000]] as const) store.add(Object.values(twoHops(id, t0)));
    expect(store.list().map((t) => [t.traceId, t.spanCount])).toEqual([
      ["new", 2],
      ["mid", 2],
    ]);
    // A late span of an evicted trace does not bring it back while newer ones fill the store.
    store.add([span({ traceId: "old", start: 1_050, end: 1_060 })]);
    expect(store.size).toBe(2);
    expect(store.get("old")).toBeUndefined();
  });

  test("untraced health probes are left out; a health check inside a traced request is kept", () => {
    const store = new TraceStore();
    const grpcProbe = span({ traceId: "probe-grpc", start: 10, end: 11, name: "grpc.health.v1.Health/Check", kind: "server", attributes: { "rpc.service": "grpc.health.v1.Health", "rpc.method": "Check" } });
    const gatewayProbe = span({ traceId: "probe-gw", start: 10, end: 11, name: "POST /grpc.health.v1.Health/Check", kind: "server", attributes: { "url.path": "/grpc.health.v1.Health/Check" } });
    const healthz = span({ traceId: "probe-healthz", start: 10, end: 11, name: "GET", kind: "server", attributes: { "url.path": "/healthz" } });
    const route = span({ traceId: "route", start: 10, end: 11, name: "GET /v1/healthz-report", kind: "server", attributes: { "url.path": "/v1/healthz-report" } });
    const inRequest = { ...grpcProbe, traceId: "request", parentSpanId: "caller" };
    expect([grpcProbe, gatewayProbe, healthz, route, inRequest].map(isHealthProbe)).toEqual([true, true, true, false, false]);
    expect(store.add([grpcProbe, gatewayProbe, healthz])).toBe(false);
    expect(store.size).toBe(0);
    store.add([route, inRequest]);
    expect(store.list().map((t) => t.traceId).sort()).toEqual(["request", "route"]);
  });

  test("the root is the earliest span without a parent in the trace; any error marks the trace", () => {
    const { server, client, remote } = twoHops("t", 0);
    // The caller was not traced by the console's instances: its span id is unknown here.
    const fromOutside = { ...server, parentSpanId: "caller" };
    expect(rootSpan([remote, client, fromOutside])?.spanId).toBe(server.spanId);
    // Only the inventory part arrived so far: it is the root until the rest comes.
    expect(rootSpan([remote])?.spanId).toBe(remote.spanId);
    const failed = summarizeTrace("t", [fromOutside, { ...client, status: { code: "error", message: "Unavailable" } }, remote]);
    expect(failed).toMatchObject({ status: "error", errorCount: 1, rootService: "catalog" });
    expect(summarizeTrace("t", [])).toMatchObject({ spanCount: 0, durationMs: 0, rootName: "" });
  });
});

describe("waterfall layout", () => {
  test("depth-first rows with depth, offset and width relative to the trace", () => {
    const { server, client, remote } = twoHops("t", 1_000);
    // A second downstream call, started later than the first but listed first.
    const client2 = span({ traceId: "t", parentSpanId: server.spanId, kind: "client", start: 1_075, end: 1_095, status: { code: "error", message: "NotFound" } });
    const wf = layoutWaterfall("t", [client2, remote, server, client]);
    expect(wf).toMatchObject({ traceId: "t", startTime: 1_000, durationMs: 100 });
    expect(wf.rows.map((r) => [r.spanId, r.depth, r.offsetPct, r.widthPct, r.startOffsetMs])).toEqual([
      [server.spanId, 0, 0, 100, 0],
      [client.spanId, 1, 10, 80, 10],
      [remote.spanId, 2, 20, 50, 20],
      [client2.spanId, 1, 75, 20, 75],
    ]);
    expect(wf.rows[2]).toMatchObject({ service: "inventory", instance: "inventory-2", kind: "server", status: "unset", parentSpanId: client.spanId });
    expect(wf.rows[3]).toMatchObject({ status: "error", statusMessage: "NotFound" });
  });

  test("orphans become roots, a parent cycle is still shown once, zero-length traces lay out flat", () => {
    const a = span({ traceId: "c", spanId: "a", parentSpanId: "b", start: 0, end: 10 });
    const b = span({ traceId: "c", spanId: "b", parentSpanId: "a", start: 5, end: 10 });
    const orphan = span({ traceId: "c", spanId: "o", parentSpanId: "gone", start: 2, end: 4 });
    const rows = layoutWaterfall("c", [a, b, orphan]).rows;
    expect(rows.map((r) => [r.spanId, r.depth])).toEqual([
      ["o", 0],
      ["a", 0],
      ["b", 1],
    ]);
    const flat = layoutWaterfall("z", [span({ traceId: "z", start: 7, end: 7 })]);
    expect(flat.rows[0]).toMatchObject({ offsetPct: 0, widthPct: 0, durationMs: 0 });
    expect(layoutWaterfall("e", [])).toEqual({ traceId: "e", startTime: 0, durationMs: 0, rows: [] });
  });

  test("a span ending after its parent (clock skew) never reaches past 100 %", () => {
    const root = span({ traceId: "s", spanId: "r", start: 0, end: 50 });
    const late = span({ traceId: "s", spanId: "l", parentSpanId: "r", start: 40, end: 100 });
    const rows = layoutWaterfall("s", [root, late]).rows;
    expect(rows[0]).toMatchObject({ offsetPct: 0, widthPct: 50 });
    expect(rows[1]).toMatchObject({ offsetPct: 40, widthPct: 60 });
    for (const r of rows) expect(r.offsetPct + r.widthPct).toBeLessThanOrEqual(100);
  });
});
