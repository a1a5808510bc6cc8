/**
 * Issue #8's proofs against the real local mesh (etcd, NATS, every shop service, the gateway and
 * the console as separate processes, started by scripts/local-mesh on free ports):
 * - one checkout through the gateway is ONE trace: the gateway, orders (its server span, the
 *   detached checkout saga, its client calls), catalog, inventory and payments, the outbox publish
 *   spans and the consumers' process spans, checked span by span (parents, services, codes);
 * - the log lines of that request carry its trace id in every process it touched;
 * - `/metrics` of orders, payments, inventory and notifications count exactly the traffic sent;
 * - the console (console/main.ts, as the launcher runs it) in headless Chromium lists every
 *   service, the gateway included, and shows that checkout's trace with a waterfall bar for each
 *   hop; MESHWORK_UPDATE_SCREENSHOT=1 writes that page to console/screenshot.png.
 * Spans come from each process's `/spans` endpoint, found through its registry entry.
 */
import { randomBytes, randomUUID } from "node:crypto";
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { request } from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Etcd3 } from "etcd3";
import { chromium, type Browser } from "playwright-core";
import { mintDevToken } from "../../gateway/dev-token.js";
import { createEtcdClient } from "../../mesh/etcd/client.js";
import { waitFor } from "../../mesh/infra/index.js";
import type { InstanceInfo } from "../../mesh/registry/index.js";
import type { SpanRecord } from "../../mesh/telemetry/index.js";
import { startLocalMesh, type LocalMesh } from "../../scripts/local-mesh/launcher.js";
import { registeredInstances } from "../../scripts/local-mesh/instances.js";
import { parsePrometheusText } from "../../mesh/telemetry/prometheus-text.js";

// One start (~20 s on a loaded 2-core machine), two checkouts and the waits for their events.
jest.setTimeout(120_000);

// Debian's Chromium, driven by playwright-core (as console/console.test.ts does).
const CHROMIUM = "/usr/bin/chromium";
const CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync"];

type Json = Record<string, any>;

/** One HTTP/1.1 request without connection pooling; the body parsed as JSON when it is JSON. */
function http(method: string, url: string, opts: { body?: unknown; headers?: Record<string, string> } = {}): Promise<{ status: number; json: Json; text: string }> {
  return new Promise((resolve, reject) => {
    const body = opts.body === undefined ? undefined : JSON.stringify(opts.body);
    const headers: Record<string, string> = { ...opts.headers };
    if (body !== undefined) headers["content-type"] = "application/json";
    const req = request(url, { method, headers, agent: false, timeout: 15_000 }, (res) => {
      let text = "";
      res.setEncoding("utf8");
      res.on("data", (c: string) => (text += c));
      res.on("end", () => {
        let json: Json = {};
        try {
          json = JSON.parse(text) as Json;
        } catch {
          // /metrics is text; callers that expect JSON check fields and fail there.
        }
        resolve({ status: res.statusCode ?? 0, json, text });
      });
    });
    req.on("timeout", () => req.destroy(new Error(`${method} ${url} timed out`)));
    req.on("error", reject);
    req.end(body);
  });
}

const samples = parsePrometheusText;

/** The value of the one series `name` with (at least) `labels`; undefined when absent. */
function value(all: ReturnType<typeof samples>, name: string, labels: Record<string, string> = {}): number | undefined {
  const found = all.filter((s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v));
  if (found.length > 1) throw new Error(`${name}${JSON.stringify(labels)} matches ${found.length} series`);
  return found[0]?.value;
}

/** The instance and trace id of a log line as the launcher relays it (`[instance] <pino JSON or key=value text>`). */
function traceIdOf(line: string): { instance: string; traceId: string | undefined; msg: string } | undefined {
  const m = /^\[([^\]]+)\] (.*)$/.exec(line);
  if (!m) return undefined;
  const [, instance, text] = m;
  try {
    const o = JSON.parse(text) as Json;
    // The line's own instance id (the launcher prefixes the gateway's lines with "gateway" only).
    return { instance: typeof o.instance === "string" ? o.instance : instance, traceId: typeof o.trace_id === "string" ? o.trace_id : undefined, msg: String(o.msg ?? "") };
  } catch {
    // The launcher's readable form (scripts/local-mesh/log-format.ts): `LEVEL msg key=value ...`.
    const msg = /^[A-Z0-9]+ (.*?)(?= [A-Za-z_][\w.]*=|$)/.exec(text)?.[1] ?? text;
    return { instance, traceId: /\btrace_id=([0-9a-f]{32})\b/.exec(text)?.[1], msg };
  }
}

describe("a checkout through the local mesh, observed", () => {
  const dataDir = mkdtempSync(join(tmpdir(), "meshwork-trace-"));
  const lines: string[] = [];
  let mesh: LocalMesh;
  let etcd: Etcd3;
  let instances: InstanceInfo[] = [];
  let token = "";
  let customer = "";
  // The caller's own span: the test plays a traced client, so the gateway must continue its trace.
  const traceId = randomBytes(16).toString("hex");
  const callerSpanId = randomBytes(8).toString("hex");
  let orderId = "";
  let spans: SpanRecord[] = [];
  // Tests that ran to their end; fewer than all means the processes' lines are worth printing.
  let passed = 0;

  /** Every span of `traceId` recorded by any registered process (its `/spans`, found through etcd). */
  async function traceSpans(id: string): Promise<SpanRecord[]> {
    const all = await Promise.all(
      instances.map(async (i) => {
        const r = await http("GET", `http://${i.metadata.metrics}/spans?traceId=${id}`);
        return (r.json.spans ?? []) as SpanRecord[];
      }),
    );
    return all.flat();
  }

  async function metricsOf(service: string): Promise<ReturnType<typeof samples>> {
    const i = instances.find((x) => x.service === service);
    if (!i) throw new Error(`no ${service} instance registered`);
    return samples((await http("GET", `http://${i.metadata.metrics}/metrics`)).text);
  }

  // Started with the mesh (it takes a few seconds of its own); the console test drives it.
  let browsing: Promise<Browser> | undefined;

  beforeAll(async () => {
    browsing = existsSync(CHROMIUM) ? chromium.launch({ executablePath: CHROMIUM, args: CHROMIUM_ARGS }) : Promise.reject(new Error(`${CHROMIUM} is missing: install it with 'apt-get install -y chromium' (scripts/ensure-infra.sh does with MESHWORK_WITH_BROWSER=1)`));
    // Handled where it is awaited; this keeps a failed launch from being an unhandled rejection meanwhile.
    browsing.catch(() => undefined);
    // LOG_LEVEL=debug: every process writes a line per span it finishes (mesh/telemetry spanLogProcessor).
    // A 1 s console poll (its default is 2 s) keeps the browser test's waits short.
    mesh = await startLocalMesh({
      dataDir,
      ports: { etcd: 0, nats: 0, gateway: 0, console: 0 },
      replicas: { catalog: 1 },
      env: { ...process.env, LOG_LEVEL: "debug", MESHWORK_CONSOLE_POLL_MS: "1000" },
      log: (l) => lines.push(l),
    });
    etcd = createEtcdClient(mesh.etcdEndpoints);
    customer = `cust-${randomUUID().slice(0, 8)}`;
    token = await mintDevToken({ secret: mesh.jwtSecret, subject: customer, scopes: ["orders:read", "orders:write", "notifications:read"] });
  });

  afterAll(async () => {
    if (passed < 4) process.stderr.write(`--- launcher log (last 200 lines) ---\n${lines.slice(-200).join("\n")}\n`);
    await browsing?.then((b) => b.close()).catch(() => undefined);
    etcd?.close();
    await mesh?.stop();
    rmSync(dataDir, { recursive: true, force: true });
  });

  it("one checkout through the gateway is one trace, span by span", async () => {
    const placed = await http("POST", `${mesh.gatewayUrl}/v1/orders`, {
      headers: { authorization: `Bearer ${token}`, traceparent: `00-${traceId}-${callerSpanId}-01` },
      body: { idempotencyKey: randomUUID(), customerId: customer, items: [{ productId: "prod-001", quantity: 1 }], currencyCode: "EUR", cardNumber: "4242424242424242" },
    });
    expect(placed.status).toBe(200);
    expect(placed.json.order.status).toBe("ORDER_STATUS_CONFIRMED");
    orderId = placed.json.order.id;

    instances = await registeredInstances(etcd);
    expect(instances.every((i) => typeof i.metadata.metrics === "string")).toBe(true);

    // The trace is complete when the notification of the confirmation was processed and every
    // span's parent is in the trace (or is the caller's span): nothing still on its way.
    spans = await waitFor(
      async () => {
        const s = await traceSpans(traceId);
        const ids = new Set([...s.map((x) => x.spanId), callerSpanId]);
        const done = s.some((x) => x.name === "process orders.order_confirmed") && s.every((x) => x.parentSpanId !== undefined && ids.has(x.parentSpanId));
        return done ? s : undefined;
      },
      { timeoutMs: 30_000, intervalMs: 250, what: `the whole trace ${traceId}` },
    );

    const one = (service: string, kind: SpanRecord["kind"], name: string): SpanRecord => {
      const found = spans.filter((s) => s.service === service && s.kind === kind && s.name === name);
      if (found.length !== 1) throw new Error(`expected one ${kind} span ${name} in ${service}, found ${found.length}: ${spans.map((s) => `${s.service}/${s.kind}/${s.name}`).join(", ")}`);
      return found[0];
    };
    const code = (s: SpanRecord) => s.attributes["rpc.grpc.status_code"];

    // Every span of the trace, whichever process recorded it, has the caller's trace id.
    expect(new Set(spans.map((s) => s.traceId))).toEqual(new Set([traceId]));
    expect(new Set(spans.map((s) => s.service))).toEqual(new Set(["gateway", "orders", "catalog", "inventory", "payments", "notifications"]));

    // gateway: its server span continues the caller; its client call to orders is a child of it.
    const gatewayServer = spans.find((s) => s.service === "gateway" && s.kind === "server")!;
    expect(gatewayServer).toBeDefined();
    expect(gatewayServer.parentSpanId).toBe(callerSpanId);
    const gatewayCall = one("gateway", "client", "orders.v1.OrderService/CreateOrder");
    expect(gatewayCall.parentSpanId).toBe(gatewayServer.spanId);
    expect(code(gatewayCall)).toBe(0);

    // orders: the server span, then the detached saga continuing it, then the saga's calls.
    const createOrder = one("orders", "server", "orders.v1.OrderService/CreateOrder");
    expect(createOrder.parentSpanId).toBe(gatewayCall.spanId);
    expect(code(createOrder)).toBe(0);
    const saga = one("orders", "internal", "orders checkout saga");
    expect(saga.parentSpanId).toBe(createOrder.spanId);
    expect(saga.attributes["meshwork.order_id"]).toBe(orderId);
    expect(saga.events.find((e) => e.name === "saga_finished")?.attributes["meshwork.saga.outcome"]).toBe("confirmed");

    // Each saga call: an orders client span (child of the saga) → the callee's server span (its child), both OK.
    const calls: [string, string][] = [
      ["catalog", "catalog.v1.CatalogService/GetProduct"],
      ["inventory", "inventory.v1.InventoryService/Reserve"],
      ["payments", "payments.v1.PaymentService/Authorize"],
      ["inventory", "inventory.v1.InventoryService/CommitReservation"],
      ["payments", "payments.v1.PaymentService/Capture"],
    ];
    for (const [callee, name] of calls) {
      const client = one("orders", "client", name);
      expect({ name, parent: client.parentSpanId, code: code(client), target: client.attributes["meshwork.target"] }).toEqual({ name, parent: saga.spanId, code: 0, target: callee });
      const server = one(callee, "server", name);
      expect({ name, parent: server.parentSpanId, code: code(server) }).toEqual({ name, parent: client.spanId, code: 0 });
    }
    // In the order the saga makes them.
    const starts = calls.map(([, name]) => one("orders", "client", name).startTime);
    expect([...starts].sort((a, b) => a - b)).toEqual(starts);

    // orders' events: the relay's PRODUCER spans continue the CreateOrder span stored with the
    // outbox rows; the notifications consumer's CONSUMER spans are children of those.
    for (const event of ["order_placed", "order_confirmed"]) {
      const publish = one("orders", "producer", `publish orders.${event}`);
      expect(publish.parentSpanId).toBe(createOrder.spanId);
      expect(publish.attributes).toMatchObject({ "messaging.system": "nats", "messaging.destination.name": `orders.${event}`, "messaging.operation.type": "send" });
      const processed = one("notifications", "consumer", `process orders.${event}`);
      expect(processed.parentSpanId).toBe(publish.spanId);
      expect(processed.attributes).toMatchObject({
        "messaging.system": "nats",
        "messaging.consumer.group.name": "notifications-orders",
        "messaging.message.id": publish.attributes["messaging.message.id"],
        "meshwork.delivery_count": 1,
      });
      expect(processed.status.code).not.toBe("error");
    }
    // payments' event about the same checkout: published under its Authorize span, consumed by orders.
    const authorized = one("payments", "producer", "publish payments.payment_authorized");
    expect(authorized.parentSpanId).toBe(one("payments", "server", "payments.v1.PaymentService/Authorize").spanId);
    expect(one("orders", "consumer", "process payments.payment_authorized").parentSpanId).toBe(authorized.spanId);
    passed++;
  });

  it("the request's log lines carry its trace id in every process it touched", async () => {
    expect(spans.length).toBeGreaterThan(0);
    // The processes the trace went through (the previous test checked they are all six), by the
    // launcher's name for them, which prefixes their lines: the instance id, "gateway" for the gateway.
    const touched = [...new Set(spans.map((s) => (s.service === "gateway" ? "gateway" : (s.instance ?? s.service))))].sort();
    expect(touched).toEqual(expect.arrayContaining(["catalog-1", "inventory-1", "notifications-1", "orders-1", "payments-1"]));
    const parsed = await waitFor(
      () => {
        const p = lines.map(traceIdOf).filter((l) => l?.traceId === traceId) as { instance: string; traceId: string; msg: string }[];
        return touched.every((i) => p.some((l) => l.instance === i)) ? p : undefined;
      },
      { timeoutMs: 10_000, intervalMs: 100, what: `a log line with trace id ${traceId} from each of ${touched.join(", ")}` },
    );
    const byInstance = new Map<string, string[]>();
    for (const l of parsed) byInstance.set(l.instance, [...(byInstance.get(l.instance) ?? []), l.msg]);
    expect([...byInstance.keys()].sort()).toEqual(touched);
    // The saga's own line, written in the detached drive, and the consumer's span line.
    expect(byInstance.get("orders-1")).toContain("checkout saga finished");
    expect(byInstance.get("notifications-1")).toContain("span");
    passed++;
  });

  it("/metrics counts exactly the traffic sent", async () => {
    // A second checkout, declined: one FAILED saga with compensations.
    const declined = await http("POST", `${mesh.gatewayUrl}/v1/orders`, {
      headers: { authorization: `Bearer ${token}` },
      body: { idempotencyKey: randomUUID(), customerId: customer, items: [{ productId: "prod-001", quantity: 1 }], currencyCode: "EUR", cardNumber: "4000000000000002" },
    });
    expect(declined.json.code).toBe("failed_precondition");

    // Events of both checkouts published and consumed: backlog 0, four order notifications processed.
    const orders = await waitFor(
      async () => {
        const m = await metricsOf("orders");
        return value(m, "meshwork_outbox_backlog") === 0 && value(m, "meshwork_saga_outcomes_total", { outcome: "failed" }) === 1 ? m : undefined;
      },
      { timeoutMs: 20_000, intervalMs: 250, what: "orders' outbox drained and the failed saga counted" },
    );
    expect(value(orders, "meshwork_saga_outcomes_total", { outcome: "confirmed" })).toBe(1);
    expect(value(orders, "meshwork_saga_outcomes_total", { outcome: "cancelled" })).toBeUndefined();
    // Server side of orders: one OK and one FailedPrecondition CreateOrder, each timed.
    expect(value(orders, "rpc_server_requests_total", { service: "orders.v1.OrderService", method: "CreateOrder", code: "OK" })).toBe(1);
    expect(value(orders, "rpc_server_requests_total", { service: "orders.v1.OrderService", method: "CreateOrder", code: "FailedPrecondition" })).toBe(1);
    expect(value(orders, "rpc_server_duration_seconds_count", { service: "orders.v1.OrderService", method: "CreateOrder" })).toBe(2);
    // Client side: both checkouts priced and reserved and authorized (a decline is an answer, OK);
    // only the first committed and captured; the second released its stock and looked at its payment.
    const client = (target: string, method: string) => value(orders, "rpc_client_requests_total", { target, method, code: "OK" });
    expect({
      GetProduct: client("catalog", "GetProduct"),
      Reserve: client("inventory", "Reserve"),
      Authorize: client("payments", "Authorize"),
      CommitReservation: client("inventory", "CommitReservation"),
      Capture: client("payments", "Capture"),
      GetPayment: client("payments", "GetPayment"),
      ReleaseReservation: client("inventory", "ReleaseReservation"),
    }).toEqual({ GetProduct: 2, Reserve: 2, Authorize: 2, CommitReservation: 1, Capture: 1, GetPayment: 1, ReleaseReservation: 1 });
    expect(value(orders, "rpc_client_duration_seconds_count", { target: "payments", method: "Authorize" })).toBe(2);
    // Attempts are at least the calls (a retry would add one and show in retries_total).
    const attempts = value(orders, "rpc_client_attempts_total", { target: "catalog", method: "GetProduct" })!;
    expect(attempts - (value(orders, "rpc_client_retries_total", { target: "catalog", method: "GetProduct" }) ?? 0)).toBe(2);
    // Client gauges: one catalog endpoint known, none ejected, breakers closed; registered once.
    expect(value(orders, "rpc_client_known_endpoints", { target: "catalog" })).toBe(1);
    expect(value(orders, "rpc_client_ejected_endpoints", { target: "catalog" })).toBe(0);
    expect(value(orders, "rpc_client_breaker_state", { target: "payments" })).toBe(0);
    expect(value(orders, "meshwork_registry_registered")).toBe(1);
    expect(value(orders, "meshwork_registry_registrations_total")).toBe(1);

    const payments = await metricsOf("payments");
    expect(value(payments, "rpc_server_requests_total", { method: "Authorize", code: "OK" })).toBe(2);
    expect(value(payments, "rpc_server_requests_total", { method: "Capture", code: "OK" })).toBe(1);
    expect(value(payments, "rpc_server_requests_total", { method: "Void" })).toBeUndefined();
    const inventory = await metricsOf("inventory");
    expect(value(inventory, "rpc_server_requests_total", { method: "Reserve", code: "OK" })).toBe(2);
    expect(value(inventory, "rpc_server_requests_total", { method: "ReleaseReservation", code: "OK" })).toBe(1);

    // notifications: placed, confirmed, placed, failed processed once each, nothing redelivered or dead-lettered.
    const notifications = await waitFor(
      async () => {
        const r = await http("GET", `${mesh.gatewayUrl}/v1/customers/${customer}/notifications`, { headers: { authorization: `Bearer ${token}` } });
        return ((r.json.notifications as Json[] | undefined) ?? []).length >= 4 ? metricsOf("notifications") : undefined;
      },
      { timeoutMs: 20_000, intervalMs: 250, what: "four notifications of the two checkouts" },
    );
    expect(value(notifications, "meshwork_dlq_messages")).toBe(0);
    expect(value(notifications, "meshwork_consumer_redeliveries_total", { consumer: "notifications-orders" })).toBeUndefined();
    passed++;
  });

  // Last: its page views and the browsing below would change the counts the test above checks.
  it("the console lists every service and shows the checkout as a trace with a bar for each hop", async () => {
    expect(spans.length).toBeGreaterThan(0);
    const browser = await browsing!;
    // 1600 px: the waterfall's labels of the deepest hops (depth 7) fit without ellipsis.
    const page = await browser.newPage({ viewport: { width: 1600, height: 1000 } });
    try {
      await page.goto(mesh.consoleUrl!);

      // Every registered instance, the gateway's included, on the page and SERVING.
      const registered = await registeredInstances(etcd);
      const wanted = [...new Set(registered.map((i) => i.service))].sort();
      expect(wanted).toEqual(["catalog", "gateway", "inventory", "notifications", "orders", "payments"]);
      await page.waitForFunction((n) => document.querySelectorAll('[data-testid="instance-row"][data-health="SERVING"]').length === n, registered.length, { timeout: 15_000 });
      const cards = await page.locator('[data-testid="service-card"]').evaluateAll((els) =>
        els.map((c) => ({ service: c.getAttribute("data-service"), instances: [...c.querySelectorAll('[data-testid="instance-row"]')].map((r) => r.getAttribute("data-instance")).sort() })),
      );
      expect(cards).toEqual(wanted.map((service) => ({ service, instances: registered.filter((i) => i.service === service).map((i) => i.instance).sort() })));

      // The checkout's trace (the caller's trace id) in the list; opened, every span the
      // processes recorded for it becomes a bar (spans reach the console over a poll or two).
      const row = page.locator(`[data-testid="trace-row"][data-trace-id="${traceId}"]`);
      await row.waitFor({ timeout: 15_000 });
      // The console's own health checks (one per instance and poll) are not traces of their own.
      const roots = await page.locator('[data-testid="trace-row"] .root-name').evaluateAll((els) => els.map((e) => e.getAttribute("title") ?? ""));
      expect(roots.filter((r) => /health/i.test(r))).toEqual([]);
      await row.click();
      await page.waitForFunction(
        (ids) => {
          const shown = new Set([...document.querySelectorAll('[data-testid="waterfall"] [data-testid="span-bar"]')].map((e) => e.getAttribute("data-span-id")));
          return ids.every((id) => shown.has(id));
        },
        spans.map((s) => s.spanId),
        { timeout: 15_000 },
      );
      const bars = await page.locator('[data-testid="waterfall"] [data-testid="span-bar"]').evaluateAll((els) =>
        els.map((e) => ({
          span: e.getAttribute("data-span-id")!,
          parent: e.getAttribute("data-parent-span-id"),
          depth: Number(e.getAttribute("data-depth")),
          service: e.getAttribute("data-service"),
          kind: e.getAttribute("data-kind"),
          name: e.getAttribute("data-name"),
          label: e.querySelector(".span-name")?.textContent,
          status: e.getAttribute("data-status"),
        })),
      );
      // One bar per span, each indented one level below its parent's bar, none in error.
      expect(new Set(bars.map((b) => b.span)).size).toBe(bars.length);
      const depthOf = new Map(bars.map((b) => [b.span, b.depth]));
      for (const b of bars) expect({ span: b.span, depth: b.depth }).toEqual({ span: b.span, depth: b.parent !== null && depthOf.has(b.parent) ? depthOf.get(b.parent)! + 1 : 0 });
      expect(bars.filter((b) => b.status === "error")).toEqual([]);
      // The root is the gateway's server span, which continues the test's own (untraced here) span.
      expect(bars[0]).toMatchObject({ depth: 0, service: "gateway", kind: "server", parent: callerSpanId });

      const hops: [service: string, kind: string, name: string, depth: number][] = [
        ["gateway", "client", "orders.v1.OrderService/CreateOrder", 1],
        ["orders", "server", "orders.v1.OrderService/CreateOrder", 2],
        ["orders", "internal", "orders checkout saga", 3],
        ...(
          [
            ["catalog", "catalog.v1.CatalogService/GetProduct"],
            ["inventory", "inventory.v1.InventoryService/Reserve"],
            ["payments", "payments.v1.PaymentService/Authorize"],
            ["inventory", "inventory.v1.InventoryService/CommitReservation"],
            ["payments", "payments.v1.PaymentService/Capture"],
          ] as const
        ).flatMap(([callee, name]): [string, string, string, number][] => [
          ["orders", "client", name, 4],
          [callee, "server", name, 5],
        ]),
        ["orders", "producer", "publish orders.order_placed", 3],
        ["notifications", "consumer", "process orders.order_placed", 4],
        ["orders", "producer", "publish orders.order_confirmed", 3],
        ["notifications", "consumer", "process orders.order_confirmed", 4],
        ["payments", "producer", "publish payments.payment_authorized", 6],
        ["orders", "consumer", "process payments.payment_authorized", 7],
      ];
      const shown = hops.map(([service, kind, name]) => {
        const found = bars.filter((b) => b.service === service && b.kind === kind && b.name === name);
        return { service, kind, name, depth: found.map((b) => b.depth) };
      });
      expect(shown).toEqual(hops.map(([service, kind, name, depth]) => ({ service, kind, name, depth: [depth] })));
      // Labels: RPCs by their short service/method name, the rest as recorded.
      const label = (service: string, kind: string, name: string) => bars.find((b) => b.service === service && b.kind === kind && b.name === name)?.label;
      expect(label("orders", "server", "orders.v1.OrderService/CreateOrder")).toBe("OrderService/CreateOrder");
      expect(label("notifications", "consumer", "process orders.order_confirmed")).toBe("process orders.order_confirmed");
      expect(label("gateway", "server", bars[0].name!)).toBe(bars[0].name);

      // The picture for the README: a little browsing so the charts have something to draw (few
      // enough requests that both checkouts stay in sight at the top of the list), a poll, the
      // checkout's waterfall still open.
      for (let i = 0; i < 6; i++) await http("GET", `${mesh.gatewayUrl}/v1/products/prod-001`);
      const updated = await page.locator('[data-testid="updated-at"]').textContent();
      await page.waitForFunction((before) => document.querySelector('[data-testid="updated-at"]')?.textContent !== before, updated, { timeout: 10_000 });
      const dir = process.env.MESHWORK_UPDATE_SCREENSHOT === "1" ? join(__dirname, "../../console") : mkdtempSync(join(tmpdir(), "meshwork-console-"));
      await page.mouse.move(0, 0);
      // The click scrolled the page; the sticky header belongs at the top of the picture.
      await page.evaluate(() => {
        window.scrollTo(0, 0);
        document.getElementById("traces")?.scrollTo(0, 0);
      });
      await page.screenshot({ path: join(dir, "screenshot.png"), fullPage: true });
      passed++;
    } finally {
      await page.close();
    }
  });
});
