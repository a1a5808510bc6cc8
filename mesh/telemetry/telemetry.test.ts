import { Code, ConnectError, createClient, type Client } from "@connectrpc/connect";
import { ROOT_CONTEXT, SpanKind, SpanStatusCode, trace } from "@opentelemetry/api";
import { BasicTracerProvider } from "@opentelemetry/sdk-trace-base";
import { createServer, type Server } from "node:http";
import { CatalogService } from "../../gen/catalog/v1/catalog_pb.js";
import { InventoryService } from "../../gen/inventory/v1/inventory_pb.js";
import { PaymentService } from "../../gen/payments/v1/payments_pb.js";
import { createMeshTransport, staticEndpoints, type CallPolicy, type MeshTransport } from "../client/index.js";
import { waitFor } from "../infra/index.js";
import { startTestGrpcServer } from "../testing/grpc-server.js";
import {
  createLogger,
  observeClient,
  instrumentPolicy,
  recordEjection,
  registerGauge,
  startMetricsServer,
  startTelemetry,
  traceHttpRequests,
  tracingInterceptor,
  tracingMiddleware,
  type MetricsServer,
  type SpanRecord,
  type Telemetry,
} from "./index.js";
import { spanLogProcessor } from "./logging.js";
import { findSample, parsePrometheusText, type Sample } from "./prometheus-text.js";

let telemetry: Telemetry;
let metricsServer: MetricsServer;
const cleanup: Array<() => unknown> = [];

beforeAll(async () => {
  telemetry = startTelemetry({ serviceName: "telemetry-test", instanceId: "telemetry-test-1", version: "1.2.3", env: {} });
  metricsServer = await startMetricsServer({ telemetry, port: 0 });
});

afterAll(async () => {
  while (cleanup.length) await cleanup.pop()!();
  await metricsServer.close();
  await telemetry.shutdown();
});

/** Policies are instrumented, so attempts show on the call's span and in the attempt metrics. */
function transport(address: string | string[], policy: CallPolicy = {}): MeshTransport {
  const t = createMeshTransport({ endpoints: staticEndpoints(...[address].flat()), interceptors: [tracingInterceptor()], policy: instrumentPolicy(policy) });
  cleanup.push(() => t.close());
  return t;
}

/** Collects pino's output lines. */
function captured(): { lines: () => Record<string, unknown>[]; write(s: string): void } {
  const raw: string[] = [];
  return { write: (s: string) => void raw.push(s), lines: () => raw.join("").split("\n").filter(Boolean).map((l) => JSON.parse(l)) };
}

const samples = parsePrometheusText;
const sample = findSample;

async function scrape(): Promise<Sample[]> {
  const res = await fetch(metricsServer.url);
  expect(res.status).toBe(200);
  expect(res.headers.get("content-type")).toContain("text/plain");
  return samples(await res.text());
}

describe("A → B over grpc-js with our middleware and interceptor", () => {
  const logA = captured();
  const logB = captured();
  let clientA: Client<typeof CatalogService>;

  beforeAll(async () => {
    const loggerA = createLogger({ service: "a", instance: "a-1", level: "info", destination: logA });
    const loggerB = createLogger({ service: "b", instance: "b-1", level: "info", destination: logB });
    const b = await startTestGrpcServer(
      InventoryService,
      {
        async getStock(req) {
          loggerB.info({ productId: req.productId }, "stock lookup");
          if (req.productId === "missing") throw new ConnectError(`product ${req.productId} not found`, Code.NotFound);
          if (req.productId === "boom") throw new Error("database exploded");
          return { stock: { productId: req.productId, onHand: 3 } };
        },
      },
      { middleware: [tracingMiddleware()] },
    );
    cleanup.push(b.close);
    const clientB = createClient(InventoryService, transport(b.address));
    const a = await startTestGrpcServer(
      CatalogService,
      {
        async getProduct(req) {
          loggerA.info({ id: req.id }, "product lookup");
          const s = await clientB.getStock({ productId: req.id });
          return { product: { id: req.id, name: `on hand ${s.stock?.onHand}` } };
        },
      },
      { middleware: [tracingMiddleware()] },
    );
    cleanup.push(a.close);
    clientA = createClient(CatalogService, transport(a.address));
  });

  async function inRoot<T>(fn: () => Promise<T>): Promise<{ traceId: string; rootSpanId: string; result: PromiseSettledResult<T> }> {
    return trace.getTracer("test").startActiveSpan("test-root", async (root) => {
      const [result] = await Promise.allSettled([fn()]);
      root.end();
      return { traceId: root.spanContext().traceId, rootSpanId: root.spanContext().spanId, result };
    });
  }

  function chain(traceId: string, rootSpanId: string): SpanRecord[] {
    const spans = telemetry.recentSpans().filter((s) => s.traceId === traceId && s.name !== "test-root");
    const out: SpanRecord[] = [];
    let parent = rootSpanId;
    for (;;) {
      const child = spans.find((s) => s.parentSpanId === parent);
      if (!child) return out;
      out.push(child);
      parent = child.spanId;
    }
  }

  it("links client → server → client → server spans in one trace with the RPC attributes", async () => {
    const { traceId, rootSpanId, result } = await inRoot(() => clientA.getProduct({ id: "p1" }));
    expect(result.status).toBe("fulfilled");
    const all = telemetry.recentSpans().filter((s) => s.traceId === traceId);
    expect(all).toHaveLength(5); // root + 4
    const spans = chain(traceId, rootSpanId);
    expect(spans.map((s) => [s.kind, s.name])).toEqual([
      ["client", "catalog.v1.CatalogService/GetProduct"],
      ["server", "catalog.v1.CatalogService/GetProduct"],
      ["client", "inventory.v1.InventoryService/GetStock"],
      ["server", "inventory.v1.InventoryService/GetStock"],
    ]);
    for (const s of spans) {
      expect(s.attributes["rpc.system"]).toBe("grpc");
      expect(s.attributes["rpc.grpc.status_code"]).toBe(0);
      expect(s.status.code).toBe("unset");
      expect(s.service).toBe("telemetry-test");
      expect(s.instance).toBe("telemetry-test-1");
    }
    expect(spans[0].attributes["rpc.service"]).toBe("catalog.v1.CatalogService");
    expect(spans[0].attributes["rpc.method"]).toBe("GetProduct");
    expect(spans[0].attributes["meshwork.target"]).toBe("catalog");
    expect(spans[2].attributes["meshwork.target"]).toBe("inventory");
    // The client spans know the endpoint that answered, and carry one "attempt" event.
    expect(spans[0].attributes["server.address"]).toBe("127.0.0.1");
    expect(typeof spans[0].attributes["server.port"]).toBe("number");
    expect(spans[0].events.map((e) => e.name)).toEqual(["attempt"]);
    expect(spans[0].events[0].attributes).toMatchObject({ "meshwork.attempt": 1, "meshwork.outcome": "success" });
    // Children lie inside their parents.
    for (let i = 1; i < spans.length; i++) {
      expect(spans[i].startTime).toBeGreaterThanOrEqual(spans[i - 1].startTime);
      expect(spans[i].endTime).toBeLessThanOrEqual(spans[i - 1].endTime + 1);
    }
  });

  it("records NotFound on every span: client spans ERROR, server spans UNSET (not a server fault)", async () => {
    const { traceId, rootSpanId, result } = await inRoot(() => clientA.getProduct({ id: "missing" }));
    expect(result.status === "rejected" && ConnectError.from(result.reason).code).toBe(Code.NotFound);
    const spans = chain(traceId, rootSpanId);
    expect(spans.map((s) => s.kind)).toEqual(["client", "server", "client", "server"]);
    for (const s of spans) expect(s.attributes["rpc.grpc.status_code"]).toBe(Code.NotFound);
    expect(spans.map((s) => s.status.code)).toEqual(["error", "unset", "error", "unset"]);
    expect(spans[0].status.message).toContain("not found");
  });

  it("marks a server fault (Internal) as ERROR on the server span with the exception", async () => {
    const { traceId, rootSpanId } = await inRoot(() => clientA.getProduct({ id: "boom" }));
    const spans = chain(traceId, rootSpanId);
    const serverB = spans[3];
    expect(serverB.attributes["rpc.grpc.status_code"]).toBe(Code.Internal);
    expect(serverB.status.code).toBe("error");
    expect(serverB.events.some((e) => e.name === "exception")).toBe(true);
  });

  it("stamps log lines in both handlers with the request's trace id and each server span's id", async () => {
    const before = { a: logA.lines().length, b: logB.lines().length };
    const { traceId, rootSpanId } = await inRoot(() => clientA.getProduct({ id: "p-log" }));
    const lineA = logA.lines().slice(before.a).find((l) => l.msg === "product lookup")!;
    const lineB = logB.lines().slice(before.b).find((l) => l.msg === "stock lookup")!;
    const spans = chain(traceId, rootSpanId);
    expect(lineA).toMatchObject({ service: "a", instance: "a-1", level: "info", trace_id: traceId, span_id: spans[1].spanId, id: "p-log" });
    expect(lineB).toMatchObject({ service: "b", instance: "b-1", trace_id: traceId, span_id: spans[3].spanId });
  });
});

describe("retries on the client span", () => {
  it("shows each attempt with its endpoint, and counts attempts and retries", async () => {
    let calls = 0;
    const flaky = await startTestGrpcServer(
      PaymentService,
      {
        async void() {
          if (++calls === 1) throw new ConnectError("warming up", Code.Unavailable);
          return {};
        },
      },
      { middleware: [tracingMiddleware()] },
    );
    cleanup.push(flaky.close);
    const policy: CallPolicy = { retryDelay: (info) => (info.attempt < 3 && info.error.error.code === Code.Unavailable ? 0 : undefined) };
    const client = createClient(PaymentService, transport(flaky.address, policy));
    const { traceId } = await trace.getTracer("test").startActiveSpan("retry-root", async (root) => {
      await client.void({});
      root.end();
      return { traceId: root.spanContext().traceId };
    });
    const spans = telemetry.recentSpans().filter((s) => s.traceId === traceId);
    const clientSpan = spans.find((s) => s.kind === "client")!;
    expect(clientSpan.events.map((e) => e.name)).toEqual(["attempt", "retry"]);
    expect(clientSpan.events[0].attributes).toMatchObject({ "meshwork.attempt": 1, "meshwork.outcome": "failure", "rpc.grpc.status_code": Code.Unavailable, "server.port": flaky.port });
    expect(clientSpan.events[1].attributes).toMatchObject({ "meshwork.attempt": 2, "meshwork.outcome": "success", "server.address": "127.0.0.1" });
    expect(clientSpan.attributes["meshwork.attempts"]).toBe(2);
    expect(clientSpan.status.code).toBe("unset");
    // Both attempts reached the server as children of the one client span.
    const servers = spans.filter((s) => s.kind === "server");
    expect(servers.map((s) => s.parentSpanId)).toEqual([clientSpan.spanId, clientSpan.spanId]);
    const m = await scrape();
    expect(sample(m, "rpc_client_attempts_total", { target: "payments", method: "Void" })).toBe(2);
    expect(sample(m, "rpc_client_retries_total", { target: "payments", method: "Void" })).toBe(1);
    expect(sample(m, "rpc_client_requests_total", { target: "payments", method: "Void", code: "OK" })).toBe(1);
  });
});

describe("outlier ejection", () => {
  it("shows as an event on the call that triggered it, and in the ejected-endpoints gauge", async () => {
    const good = await startTestGrpcServer(PaymentService, { async authorize() { return {}; } }, { middleware: [tracingMiddleware()] });
    const bad = await startTestGrpcServer(PaymentService, { async authorize() { throw new ConnectError("replica broken", Code.Unavailable); } }, { middleware: [tracingMiddleware()] });
    cleanup.push(good.close, bad.close);
    const t = createMeshTransport({
      endpoints: staticEndpoints(good.address, bad.address),
      interceptors: [tracingInterceptor()],
      policy: instrumentPolicy({ retryDelay: (info) => (info.attempt < 2 ? 0 : undefined) }, "payments-ejection"),
      balancer: { consecutiveFailures: 1, onEjection: recordEjection },
    });
    cleanup.push(() => t.close());
    cleanup.push(observeClient("payments-ejection", { balancer: t.balancer }));
    const client = createClient(PaymentService, t);
    // The balancer picks at random: call until the broken replica has been tried once.
    await waitFor(async () => {
      await client.authorize({});
      return t.balancer.ejected().length === 1;
    }, { timeoutMs: 5_000, what: "the broken replica to be ejected" });
    const span = telemetry.recentSpans().find((x) => x.kind === "client" && x.events.some((e) => e.name === "endpoint_ejected"))!;
    const ejected = span.events.find((e) => e.name === "endpoint_ejected")!;
    expect(ejected.attributes).toMatchObject({ "server.address": "127.0.0.1", "server.port": bad.port });
    // The balancer ejects as the failed attempt is accounted, then the same call retries on the good replica.
    expect(span.events.map((e) => e.name)).toEqual(["endpoint_ejected", "attempt", "retry"]);
    expect(span.events[2].attributes).toMatchObject({ "server.port": good.port, "meshwork.outcome": "success" });
    expect(span.status.code).toBe("unset");
    const m = await scrape();
    expect(sample(m, "rpc_client_ejected_endpoints", { target: "payments-ejection" })).toBe(1);
    expect(sample(m, "rpc_client_known_endpoints", { target: "payments-ejection" })).toBe(2);
  });
});

describe("deadlines", () => {
  it("end the server span when the call is answered at the deadline, even if the handler runs on", async () => {
    let release!: () => void;
    const handlerDone = new Promise<void>((r) => (release = r));
    const s = await startTestGrpcServer(
      PaymentService,
      {
        async refund() {
          // Ignores its signal on purpose, like a handler stuck in a slow query.
          await handlerDone;
          return {};
        },
      },
      { middleware: [tracingMiddleware()] },
    );
    cleanup.push(s.close);
    const client = createClient(PaymentService, transport(s.address));
    const started = Date.now();
    await expect(client.refund({}, { timeoutMs: 100 })).rejects.toMatchObject({ code: Code.DeadlineExceeded });
    const span = await waitFor(() => telemetry.recentSpans().find((x) => x.kind === "server" && x.attributes["rpc.method"] === "Refund"), { timeoutMs: 2_000, what: "the Refund server span" });
    release();
    // The client's cancel and the server's own deadline race; either way the server gave up.
    expect([Code.DeadlineExceeded, Code.Canceled]).toContain(span.attributes["rpc.grpc.status_code"]);
    expect(span.endTime - started).toBeLessThan(1_000);
  });
});

describe("breaker rejections", () => {
  it("show as an event on the failed client span and count under the breaker's code", async () => {
    const s = await startTestGrpcServer(PaymentService, { async capture() { return {}; } }, { middleware: [tracingMiddleware()] });
    cleanup.push(s.close);
    const open: CallPolicy = {
      begin() {
        throw new ConnectError("circuit breaker for payments is open", Code.Unavailable);
      },
    };
    const client = createClient(PaymentService, transport(s.address, open));
    const traceId = await trace.getTracer("test").startActiveSpan("breaker-root", async (root) => {
      await expect(client.capture({})).rejects.toMatchObject({ code: Code.Unavailable });
      root.end();
      return root.spanContext().traceId;
    });
    const spans = telemetry.recentSpans().filter((x) => x.traceId === traceId);
    const clientSpan = spans.find((x) => x.kind === "client")!;
    expect(clientSpan.events.map((e) => e.name)).toEqual(["breaker_rejected"]);
    expect(clientSpan.events[0].attributes).toMatchObject({ "meshwork.target": "payments" });
    expect(clientSpan).toMatchObject({ status: { code: "error" }, attributes: { "rpc.grpc.status_code": Code.Unavailable } });
    expect(spans.some((x) => x.kind === "server")).toBe(false);
    const m = await scrape();
    expect(sample(m, "rpc_client_requests_total", { target: "payments", method: "Capture", code: "Unavailable" })).toBe(1);
    expect(sample(m, "rpc_client_attempts_total", { target: "payments", method: "Capture" })).toBeUndefined();
  });
});

describe("metrics over HTTP", () => {
  it("exposes exact RED counts after 7 OK + 3 NotFound, with histograms of 10", async () => {
    const s = await startTestGrpcServer(
      PaymentService,
      {
        async getPayment(req) {
          if (req.paymentId.startsWith("missing")) throw new ConnectError(`payment ${req.paymentId} not found`, Code.NotFound);
          return {};
        },
      },
      { middleware: [tracingMiddleware()] },
    );
    cleanup.push(s.close);
    const t = transport(s.address);
    const client = createClient(PaymentService, t);
    for (let i = 0; i < 7; i++) await client.getPayment({ paymentId: `p${i}` });
    for (let i = 0; i < 3; i++) await expect(client.getPayment({ paymentId: `missing${i}` })).rejects.toMatchObject({ code: Code.NotFound });
    cleanup.push(observeClient("payments", { balancer: t.balancer, breakerState: () => "half-open" }));
    cleanup.push(registerGauge("meshwork_test_gauge", "A gauge for the test.", async () => 42, { kind: "async" }));

    const m = await scrape();
    const server = { service: "payments.v1.PaymentService", method: "GetPayment" };
    expect(sample(m, "rpc_server_requests_total", { ...server, code: "OK" })).toBe(7);
    expect(sample(m, "rpc_server_requests_total", { ...server, code: "NotFound" })).toBe(3);
    expect(sample(m, "rpc_server_duration_seconds_count", server)).toBe(10);
    expect(sample(m, "rpc_server_duration_seconds_bucket", { ...server, le: "+Inf" })).toBe(10);
    expect(sample(m, "rpc_server_duration_seconds_bucket", { ...server, le: "10" })).toBe(10);
    const caller = { target: "payments", ...server };
    expect(sample(m, "rpc_client_requests_total", { ...caller, code: "OK" })).toBe(7);
    expect(sample(m, "rpc_client_requests_total", { ...caller, code: "NotFound" })).toBe(3);
    expect(sample(m, "rpc_client_duration_seconds_count", caller)).toBe(10);
    expect(sample(m, "rpc_client_attempts_total", { target: "payments", method: "GetPayment" })).toBe(10);
    expect(sample(m, "rpc_client_retries_total", { target: "payments", method: "GetPayment" })).toBeUndefined();
    expect(sample(m, "rpc_client_known_endpoints", { target: "payments" })).toBe(1);
    expect(sample(m, "rpc_client_ejected_endpoints", { target: "payments" })).toBe(0);
    expect(sample(m, "rpc_client_breaker_state", { target: "payments" })).toBe(1);
    expect(sample(m, "meshwork_test_gauge", { kind: "async" })).toBe(42);
    expect(sample(m, "target_info", { service_name: "telemetry-test", service_instance_id: "telemetry-test-1" })).toBe(1);

    const summary = (await (await fetch(metricsServer.url.replace("/metrics", "/metrics/summary?minutes=2"))).json()) as {
      service: string;
      series: { kind: string; service: string; method: string; requests: number; errors: number; errorRatio: number; p50Ms: number; p99Ms: number; codes: Record<string, number> }[];
    };
    expect(summary.service).toBe("telemetry-test");
    const row = summary.series.find((r) => r.kind === "server" && r.method === "GetPayment")!;
    expect(row).toMatchObject({ service: "payments.v1.PaymentService", requests: 10, errors: 3, errorRatio: 0.3, codes: { OK: 7, NotFound: 3 } });
    expect(row.p50Ms).toBeGreaterThan(0);
    expect(row.p99Ms).toBeGreaterThanOrEqual(row.p50Ms);
  });

  it("serves recent spans since a time, filtered by trace, and rejects bad queries", async () => {
    const base = metricsServer.url.replace("/metrics", "");
    const all = (await (await fetch(`${base}/spans`)).json()) as { now: number; spans: SpanRecord[] };
    expect(all.spans.length).toBeGreaterThan(0);
    const later = (await (await fetch(`${base}/spans?since=${all.now}`)).json()) as { spans: SpanRecord[] };
    expect(later.spans.every((s) => s.endTime > all.now)).toBe(true);
    const one = all.spans[all.spans.length - 1];
    const byTrace = (await (await fetch(`${base}/spans?traceId=${one.traceId}&limit=1`)).json()) as { spans: SpanRecord[] };
    expect(byTrace.spans).toHaveLength(1);
    expect(byTrace.spans[0].traceId).toBe(one.traceId);
    expect((await fetch(`${base}/spans?since=yesterday`)).status).toBe(400);
    expect((await fetch(`${base}/metrics/summary?minutes=11`)).status).toBe(400);
    expect((await fetch(`${base}/nope`)).status).toBe(404);
    expect((await fetch(`${base}/metrics`, { method: "POST" })).status).toBe(405);
  });
});

describe("gateway HTTP wrapper", () => {
  it("opens a server span that parents the mesh call, sets x-request-id and writes one access line", async () => {
    const b = await startTestGrpcServer(InventoryService, { async getStock(req) { return { stock: { productId: req.productId } }; } }, { middleware: [tracingMiddleware()] });
    cleanup.push(b.close);
    const inventory = createClient(InventoryService, transport(b.address));
    const log = captured();
    const logger = createLogger({ service: "gateway", instance: "gw-1", destination: log });
    const server: Server = createServer(
      traceHttpRequests(
        (req, res) => {
          void inventory.getStock({ productId: "p9" }).then(() => {
            logger.info("handled");
            res.writeHead(200, { "content-type": "application/json" });
            res.end("{}");
          });
        },
        { logger, route: (req) => (req.url?.startsWith("/v1/stock/") ? "/v1/stock/{id}" : undefined) },
      ),
    );
    await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
    cleanup.push(() => new Promise((r) => server.close(r)));
    const port = (server.address() as { port: number }).port;
    const res = await fetch(`http://127.0.0.1:${port}/v1/stock/p9?x=1`, { headers: { connection: "close" } });
    expect(res.status).toBe(200);
    const requestId = res.headers.get("x-request-id")!;
    await res.text();
    // The access line is written when the response finishes, which can be just after fetch resolves.
    await waitFor(() => log.lines().some((l) => l.msg === "access"), { timeoutMs: 2_000, what: "the access log line" });
    const access = log.lines().find((l) => l.msg === "access")!;
    expect(access).toMatchObject({ method: "GET", path: "/v1/stock/p9", status: 200, request_id: requestId, trace_id: requestId });
    expect(typeof access.duration_ms).toBe("number");
    expect(log.lines().find((l) => l.msg === "handled")!.trace_id).toBe(requestId);
    const spans = telemetry.recentSpans().filter((s) => s.traceId === requestId);
    const http = spans.find((s) => s.name === "GET /v1/stock/{id}")!;
    expect(http).toMatchObject({ kind: "server", attributes: { "http.request.method": "GET", "http.route": "/v1/stock/{id}", "http.response.status_code": 200 } });
    expect(spans.find((s) => s.kind === "client")!.parentSpanId).toBe(http.spanId);
    const m = await scrape();
    expect(sample(m, "http_server_requests_total", { method: "GET", route: "/v1/stock/{id}", status: "200" })).toBe(1);
  });
});

describe("span log lines (LOG_LEVEL=debug)", () => {
  it("one debug line per finished server, producer and consumer span, with that span's own trace and span ids", async () => {
    const out = captured();
    const logger = createLogger({ service: "orders", instance: "orders-1", level: "debug", destination: out });
    const provider = new BasicTracerProvider({ spanProcessors: [spanLogProcessor(logger)] });
    const t = provider.getTracer("span-log-test");
    const server = t.startSpan("orders.v1.OrderService/CreateOrder", { kind: SpanKind.SERVER, attributes: { "rpc.grpc.status_code": 9 } });
    const parent = trace.setSpan(ROOT_CONTEXT, server);
    t.startSpan("catalog.v1.CatalogService/GetProduct", { kind: SpanKind.CLIENT }, parent).end();
    t.startSpan("orders checkout saga", { kind: SpanKind.INTERNAL }, parent).end();
    const publish = t.startSpan("publish orders.order_placed", { kind: SpanKind.PRODUCER }, parent);
    publish.setStatus({ code: SpanStatusCode.ERROR, message: "broker down" });
    publish.end();
    t.startSpan("process orders.order_placed", { kind: SpanKind.CONSUMER }, trace.setSpan(ROOT_CONTEXT, publish)).end();
    server.end();
    await provider.shutdown();

    const lines = out.lines();
    const id = (s: { spanContext(): { spanId: string } }) => s.spanContext().spanId;
    expect(lines.map((l) => [l.span, l.kind])).toEqual([
      ["publish orders.order_placed", "producer"],
      ["process orders.order_placed", "consumer"],
      ["orders.v1.OrderService/CreateOrder", "server"],
    ]);
    for (const l of lines) expect(l).toMatchObject({ level: "debug", msg: "span", service: "orders", instance: "orders-1", trace_id: server.spanContext().traceId, duration_ms: expect.any(Number) });
    expect(lines[0]).toMatchObject({ span_id: id(publish), parent_span_id: id(server), error: "broker down" });
    expect(lines[1]).toMatchObject({ parent_span_id: id(publish) });
    expect(lines[2]).toMatchObject({ span_id: id(server), code: 9 });
    expect(lines[2].parent_span_id).toBeUndefined();

    // At info nothing is written (and startTelemetry does not even install the processor).
    const quiet = captured();
    const infoProvider = new BasicTracerProvider({ spanProcessors: [spanLogProcessor(createLogger({ service: "orders", instance: "orders-1", level: "info", destination: quiet }))] });
    infoProvider.getTracer("span-log-test").startSpan("x", { kind: SpanKind.SERVER }).end();
    await infoProvider.shutdown();
    expect(quiet.lines()).toEqual([]);
  });
});
