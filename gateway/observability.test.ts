import { createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import type { Etcd3 } from "etcd3";
import * as net from "node:net";
import { CatalogService } from "../gen/catalog/v1/catalog_pb.js";
import { Health, HealthCheckResponse_ServingStatus } from "../gen/grpc/health/v1/health_pb.js";
import { identityMiddleware } from "../mesh/auth/index.js";
import { createMeshTransport, staticEndpoints, type MeshTransport } from "../mesh/client/index.js";
import { createEtcdClient } from "../mesh/etcd/client.js";
import { startEtcd, startProcess, tsxArgs, waitFor, type EtcdServer } from "../mesh/infra/index.js";
import { parseInstance, servicePrefix } from "../mesh/registry/index.js";
import { readRuntimeConfig } from "../mesh/runtime/index.js";
import { createLogger, startTelemetry, tracingInterceptor, tracingMiddleware, type SpanRecord, type Telemetry } from "../mesh/telemetry/index.js";
import { waitForRegistration } from "../mesh/testing/registration.js";
import { startTestGrpcServer } from "../mesh/testing/grpc-server.js";
import { loadConfig } from "./config.js";
import { runGateway, type RunningGateway } from "./run.js";
import { FAKES, TEST_IDENTITY_KEY, TEST_JWT_SECRET, testToken } from "./testing.js";
import { findSample, parsePrometheusText } from "../mesh/telemetry/prometheus-text.js";

/** Collects pino's output lines. */
function captured(): { lines: () => Record<string, unknown>[]; write(s: string): void } {
  const raw: string[] = [];
  return { write: (s: string) => void raw.push(s), lines: () => raw.join("").split("\n").filter(Boolean).map((l) => JSON.parse(l) as Record<string, unknown>) };
}

/** The value of one Prometheus sample, matched by name and a subset of labels. */
const sample = (text: string, name: string, labels: Record<string, string>) => findSample(parsePrometheusText(text), name, labels);

const GATEWAY_ENV = {
  MESHWORK_JWT_SECRET: TEST_JWT_SECRET,
  MESHWORK_IDENTITY_KEY: TEST_IDENTITY_KEY,
  MESHWORK_GATEWAY_PORT: "0",
  MESHWORK_GATEWAY_HOST: "127.0.0.1",
  // Tests send many calls from one address; limiting is tested on its own.
  MESHWORK_RATE_LIMIT_RPS: "0",
};

const CATALOG = FAKES.find(([d]) => d === CatalogService)![1];
const GET_PRODUCT = "/catalog.v1.CatalogService/GetProduct";

describe("the gateway as a mesh process", () => {
  let telemetry: Telemetry;
  let etcd: EtcdServer;
  let etcdClient: Etcd3;
  let backend: Awaited<ReturnType<typeof startTestGrpcServer>>;
  let transport: MeshTransport;
  let running: RunningGateway;
  const log = captured();
  let url: string;

  beforeAll(async () => {
    telemetry = startTelemetry({ serviceName: "gateway", instanceId: "gw-test-1", env: {} });
    etcd = await startEtcd();
    etcdClient = createEtcdClient(etcd.endpoint);
    backend = await startTestGrpcServer(CatalogService, CATALOG as never, { middleware: [tracingMiddleware(), identityMiddleware({ key: TEST_IDENTITY_KEY })] });
    transport = createMeshTransport({ endpoints: staticEndpoints(backend.address), serviceName: "catalog", interceptors: [tracingInterceptor()] });
    const runtime = readRuntimeConfig("gateway", { ETCD_ENDPOINTS: etcd.endpoint, MESHWORK_INSTANCE_ID: "gw-test-1" });
    running = await runGateway({
      config: loadConfig(GATEWAY_ENV),
      runtime,
      transportFor: () => transport,
      etcd: etcdClient,
      logger: createLogger({ service: "gateway", instance: "gw-test-1", level: "info", destination: log }),
    });
    url = `http://127.0.0.1:${running.port}`;
  }, 60_000);

  afterAll(async () => {
    await running?.stop();
    transport?.close();
    backend?.close();
    etcdClient?.close();
    await etcd?.stop();
    await telemetry?.shutdown();
  });

  const spansOf = (traceId: string): SpanRecord[] => telemetry.recentSpans().filter((s) => s.traceId === traceId);
  const accessLine = (requestId: string) => log.lines().find((l) => l.msg === "access" && l.request_id === requestId);

  it("continues the caller's trace: gateway server span → mesh client span → backend server span", async () => {
    const traceId = "4bf92f3577b34da6a3ce929d0e0e4736";
    const callerSpan = "00f067aa0ba902b7";
    const token = await testToken("alice", []);
    const res = await fetch(`${url}${GET_PRODUCT}`, {
      method: "POST",
      headers: { "content-type": "application/json", traceparent: `00-${traceId}-${callerSpan}-01`, authorization: `Bearer ${token}` },
      body: JSON.stringify({ id: "p1" }),
    });
    expect(res.status).toBe(200);
    expect(((await res.json()) as { product: { id: string } }).product.id).toBe("p1");
    const requestId = res.headers.get("x-request-id")!;
    await waitFor(() => spansOf(traceId).length >= 3 && accessLine(requestId), { what: "three spans and the access line", timeoutMs: 5_000 });
    const spans = spansOf(traceId);
    const server = spans.find((s) => s.kind === "server" && s.name === `POST ${GET_PRODUCT}`)!;
    expect(server).toMatchObject({
      parentSpanId: callerSpan,
      attributes: {
        "http.request.method": "POST",
        "http.route": GET_PRODUCT,
        "http.response.status_code": 200,
        "rpc.system": "connect_rpc",
        "rpc.service": "catalog.v1.CatalogService",
        "rpc.method": "GetProduct",
        "enduser.id": "alice",
      },
    });
    const client = spans.find((s) => s.kind === "client")!;
    expect(client.parentSpanId).toBe(server.spanId);
    const backendSpan = spans.find((s) => s.kind === "server" && s.name === "catalog.v1.CatalogService/GetProduct")!;
    expect(backendSpan.parentSpanId).toBe(client.spanId);

    expect(accessLine(requestId)).toMatchObject({
      level: "info",
      method: "POST",
      route: GET_PRODUCT,
      status: 200,
      request_id: requestId,
      trace_id: traceId,
      span_id: server.spanId,
      subject: "alice",
      service: "gateway",
    });
    expect(typeof accessLine(requestId)!.duration_ms).toBe("number");
  });

  it.each([
    ["headers and body in one write", false],
    ["the body in a later write", true],
  ])("keeps the server span as the client span's parent on an anonymous Connect JSON call (%s)", async (_n, split) => {
    // Anonymous: admission needs no wait, so the body read is all that separates the handler from
    // the backend call; the body's events fire outside the request's context.
    const traceId = split ? "5bf92f3577b34da6a3ce929d0e0e4738" : "5bf92f3577b34da6a3ce929d0e0e4737";
    const body = JSON.stringify({ id: "p2" });
    const head = `POST ${GET_PRODUCT} HTTP/1.1\r\nhost: gw\r\ncontent-type: application/json\r\ntraceparent: 00-${traceId}-00f067aa0ba902b8-01\r\ncontent-length: ${body.length}\r\nconnection: close\r\n\r\n`;
    const socket = net.connect(running.port, "127.0.0.1");
    let answer = "";
    socket.on("data", (d: Buffer) => (answer += d.toString()));
    const closed = new Promise((resolve) => socket.on("close", resolve));
    if (split) {
      socket.write(head);
      await waitFor(() => socket.bytesWritten >= head.length, { what: "the headers sent", timeoutMs: 2_000 });
      socket.write(body);
    } else {
      socket.write(head + body);
    }
    await closed;
    expect(answer.startsWith("HTTP/1.1 200")).toBe(true);
    await waitFor(() => spansOf(traceId).length >= 3, { what: "the call's spans", timeoutMs: 5_000 });
    const server = spansOf(traceId).find((s) => s.kind === "server" && s.name === `POST ${GET_PRODUCT}`)!;
    const client = spansOf(traceId).find((s) => s.kind === "client")!;
    expect(client.parentSpanId).toBe(server.spanId);
  });

  it("starts a trace for a REST call without traceparent and names the span by the route template", async () => {
    const res = await fetch(`${url}/v1/products/p7`);
    expect(res.status).toBe(200);
    const requestId = res.headers.get("x-request-id")!;
    await waitFor(() => accessLine(requestId), { what: "the access line", timeoutMs: 5_000 });
    const line = accessLine(requestId)!;
    expect(line).toMatchObject({ method: "GET", route: "/v1/products/{id}", path: "/v1/products/p7", status: 200 });
    expect(line.subject).toBeUndefined();
    const traceId = line.trace_id as string;
    await waitFor(() => spansOf(traceId).length >= 3, { what: "the REST call's spans", timeoutMs: 5_000 });
    const server = spansOf(traceId).find((s) => s.name === "GET /v1/products/{id}")!;
    expect(server.parentSpanId).toBeUndefined();
    expect(server.attributes["http.route"]).toBe("/v1/products/{id}");
    const client = spansOf(traceId).find((s) => s.kind === "client")!;
    expect(client.parentSpanId).toBe(server.spanId);
  });

  it("marks 5xx as errors: span status and an error-level access line", async () => {
    // "slow" sleeps 5 s in the fake backend; a 100 ms deadline makes the gateway answer 504.
    const res = await fetch(`${url}${GET_PRODUCT}`, {
      method: "POST",
      headers: { "content-type": "application/json", "connect-timeout-ms": "100" },
      body: JSON.stringify({ id: "slow" }),
    });
    expect(res.status).toBe(504);
    const requestId = res.headers.get("x-request-id")!;
    await waitFor(() => accessLine(requestId), { what: "the access line", timeoutMs: 5_000 });
    const line = accessLine(requestId)!;
    expect(line).toMatchObject({ level: "error", status: 504, route: GET_PRODUCT });
    const server = spansOf(line.trace_id as string).find((s) => s.kind === "server" && s.name.startsWith("POST"))!;
    expect(server.status.code).toBe("error");
    expect(server.attributes["error.type"]).toBe("504");
    // A client error is not the server's failure.
    const missing = await fetch(`${url}/v1/products/missing`);
    expect(missing.status).toBe(404);
    const id = missing.headers.get("x-request-id")!;
    await waitFor(() => accessLine(id), { what: "the 404 access line", timeoutMs: 5_000 });
    expect(accessLine(id)).toMatchObject({ level: "info", status: 404 });
  });

  it("counts requests per route and status in /metrics", async () => {
    const metricsUrl = `http://${running.metricsAddress}/metrics`;
    const before = sample(await (await fetch(metricsUrl)).text(), "http_server_requests_total", { method: "GET", route: "/v1/categories", status: "200" }) ?? 0;
    for (let i = 0; i < 5; i++) expect((await fetch(`${url}/v1/categories?pageSize=2`)).status).toBe(200);
    expect((await fetch(`${url}/no/such/route`)).status).toBe(404);
    await waitFor(
      async () => {
        const text = await (await fetch(metricsUrl)).text();
        return sample(text, "http_server_requests_total", { method: "GET", route: "/v1/categories", status: "200" }) === before + 5 &&
          (sample(text, "http_server_requests_total", { method: "GET", route: "unmatched", status: "404" }) ?? 0) >= 1;
      },
      { what: "per-route counts", timeoutMs: 5_000 },
    );
  });

  it("is registered as service gateway with its metrics address, and health-checks SERVING over gRPC", async () => {
    const kvs = await etcdClient.getAll().prefix(servicePrefix("gateway")).strings();
    const entries = Object.values(kvs).map((v) => parseInstance(JSON.parse(v)));
    expect(entries).toHaveLength(1);
    expect(entries[0]).toMatchObject({ service: "gateway", instance: "gw-test-1", port: running.port, metadata: { metrics: running.metricsAddress } });
    const health = createClient(Health, createGrpcTransport({ baseUrl: `http://${entries[0].address}:${entries[0].port}` }));
    expect((await health.check({ service: "" })).status).toBe(HealthCheckResponse_ServingStatus.SERVING);
    // Probes are counted but neither traced nor logged at info (the console polls them every second).
    const HEALTH_ROUTE = "/grpc.health.v1.Health/Check";
    await waitFor(
      async () => (sample(await (await fetch(`http://${running.metricsAddress}/metrics`)).text(), "http_server_requests_total", { route: HEALTH_ROUTE }) ?? 0) >= 1,
      { what: "the health check counted", timeoutMs: 5_000 },
    );
    expect(telemetry.recentSpans().filter((s) => s.name.includes("grpc.health.v1.Health"))).toEqual([]);
    expect(log.lines().filter((l) => l.msg === "access" && String(l.path).includes("grpc.health.v1.Health"))).toEqual([]);
    const summary = (await (await fetch(`http://${running.metricsAddress}/metrics/summary`)).json()) as { service: string };
    expect(summary.service).toBe("gateway");
  });
});

describe("gateway/main.ts", () => {
  let etcd: EtcdServer;

  beforeAll(async () => {
    etcd = await startEtcd();
  }, 60_000);

  afterAll(async () => {
    await etcd?.stop();
  });

  it("registers as gateway with metadata.metrics, serves /metrics, and deregisters and exits 0 on SIGTERM", async () => {
    const proc = startProcess(process.execPath, tsxArgs(require.resolve("./main.ts")), {
      env: { ...process.env, ...GATEWAY_ENV, ETCD_ENDPOINTS: etcd.endpoint, LOG_LEVEL: "info" },
    });
    const client = createEtcdClient(etcd.endpoint);
    try {
      const instance = await waitForRegistration(client, "gateway", proc);
      expect(instance.metadata.metrics).toMatch(/:\d+$/);
      const res = await fetch(`http://${instance.address}:${instance.port}/healthz`);
      expect(res.status).toBe(200);
      // A probe logs at debug only; an ordinary request gets its info access line.
      expect((await fetch(`http://${instance.address}:${instance.port}/openapi.json`)).status).toBe(200);
      await waitFor(() => /"msg":"access"/.test(proc.output()), { what: "an access line on stdout", timeoutMs: 5_000 });
      const accessPaths = proc
        .output()
        .split("\n")
        .filter((l) => l.startsWith("{") && l.includes('"msg":"access"'))
        .map((l) => (JSON.parse(l) as { path: string }).path);
      expect(accessPaths).toContain("/openapi.json");
      expect(accessPaths).not.toContain("/healthz");
      const metrics = await (await fetch(`http://${instance.metadata.metrics}/metrics`)).text();
      expect(sample(metrics, "http_server_requests_total", { route: "/healthz", status: "200" })).toBe(1);
      proc.proc.kill("SIGTERM");
      expect((await proc.exited).code).toBe(0);
      expect(await client.getAll().prefix(servicePrefix("gateway")).keys()).toEqual([]);
    } finally {
      await proc.stop();
      client.close();
    }
  }, 60_000);
});
