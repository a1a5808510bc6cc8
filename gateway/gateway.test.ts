import { create, equals, toJson, type DescMessage, type DescMethod, type DescService, type Message } from "@bufbuild/protobuf";
import { Code, ConnectError, createClient, createContextValues, createHandlerContext, type HandlerContext, type Transport } from "@connectrpc/connect";
import { createConnectTransport, createGrpcTransport, createGrpcWebTransport } from "@connectrpc/connect-node";
import { execFile } from "node:child_process";
import { join } from "node:path";
import { CatalogService } from "../gen/catalog/v1/catalog_pb.js";
import { InventoryService } from "../gen/inventory/v1/inventory_pb.js";
import { NotificationService } from "../gen/notifications/v1/notifications_pb.js";
import { OrderService } from "../gen/orders/v1/orders_pb.js";
import { PaymentService } from "../gen/payments/v1/payments_pb.js";
import { IDENTITY_KEY } from "../mesh/auth/index.js";
import { exposedMethods } from "./methods.js";
import { openApiDocument } from "./openapi.js";
import { waitFor } from "../mesh/infra/index.js";
import * as http from "node:http";
import { FAKES, quietWatchesCancelled, slowProductCallsCancelled, startFakeBackends, startTestGateway, testToken, type FakeBackends, type TestGateway } from "./testing.js";

const ALL_SCOPES = ["payments:read", "orders:read", "orders:write", "notifications:read"];

interface Case {
  service: DescService;
  method: string;
  input: Record<string, unknown>;
  /** Needs a token. */
  auth: boolean;
  rest: { verb: string; path: string; body?: unknown };
}

/** Every exposed unary method, with its REST form. */
const UNARY: Case[] = [
  { service: CatalogService, method: "listProducts", input: { pageSize: 2, category: "kitchen", pageToken: "t" }, auth: false, rest: { verb: "GET", path: "/v1/products?pageSize=2&category=kitchen&page_token=t" } },
  { service: CatalogService, method: "getProduct", input: { id: "p1" }, auth: false, rest: { verb: "GET", path: "/v1/products/p1" } },
  { service: CatalogService, method: "searchProducts", input: { query: "blue mug", pageSize: 3 }, auth: false, rest: { verb: "GET", path: "/v1/products:search?query=blue%20mug&pageSize=3" } },
  { service: CatalogService, method: "listCategories", input: { pageSize: 7 }, auth: false, rest: { verb: "GET", path: "/v1/categories?pageSize=7" } },
  { service: InventoryService, method: "getStock", input: { productId: "p1" }, auth: false, rest: { verb: "GET", path: "/v1/stock/p1" } },
  { service: PaymentService, method: "getPayment", input: { paymentId: "pay-1" }, auth: true, rest: { verb: "GET", path: "/v1/payments/pay-1" } },
  {
    service: OrderService,
    method: "createOrder",
    input: { idempotencyKey: "k1", customerId: "alice", items: [{ productId: "p1", quantity: 2 }], currencyCode: "EUR", cardNumber: "4242424242424242" },
    auth: true,
    rest: { verb: "POST", path: "/v1/orders", body: { idempotencyKey: "k1", customer_id: "alice", items: [{ productId: "p1", quantity: 2 }], currencyCode: "EUR", cardNumber: "4242424242424242" } },
  },
  { service: OrderService, method: "getOrder", input: { orderId: "o 1" }, auth: true, rest: { verb: "GET", path: "/v1/orders/o%201" } },
  { service: OrderService, method: "listOrders", input: { customerId: "alice", pageSize: 5 }, auth: true, rest: { verb: "GET", path: "/v1/customers/alice/orders?pageSize=5" } },
  { service: OrderService, method: "cancelOrder", input: { orderId: "o1", reason: "changed my mind" }, auth: true, rest: { verb: "POST", path: "/v1/orders/o1:cancel", body: { reason: "changed my mind" } } },
  { service: NotificationService, method: "listNotifications", input: { customerId: "alice", pageSize: 4 }, auth: true, rest: { verb: "GET", path: "/v1/customers/alice/notifications?pageSize=4" } },
];

/** Every exposed server-streaming method, with its SSE form. */
const STREAMS: Case[] = [
  { service: InventoryService, method: "watchStock", input: { productId: "p1" }, auth: false, rest: { verb: "GET", path: "/v1/stock/p1:watch" } },
  { service: OrderService, method: "watchOrder", input: { orderId: "o1" }, auth: true, rest: { verb: "GET", path: "/v1/orders/o1:watch" } },
  { service: NotificationService, method: "watchNotifications", input: { customerId: "alice" }, auth: true, rest: { verb: "GET", path: "/v1/customers/alice/notifications:watch" } },
];

function methodOf(c: Case): DescMethod {
  return c.service.methods.find((m) => m.localName === c.method)!;
}

function fakeContext(c: Case, subject: string): HandlerContext {
  const method = methodOf(c);
  return createHandlerContext({
    service: c.service,
    method,
    protocolName: "test",
    requestMethod: "POST",
    url: "/",
    contextValues: createContextValues().set(IDENTITY_KEY, subject === "anonymous" ? undefined : { subject, scopes: [] }),
  });
}

function fakeImpl(c: Case): (req: Message, ctx: HandlerContext) => unknown {
  const impl = FAKES.find(([d]) => d === c.service)![1] as unknown as Record<string, (req: Message, ctx: HandlerContext) => unknown>;
  return impl[c.method];
}

/** What the fake backend answers for `c` when the gateway forwards it for `subject`. */
async function expectedUnary(c: Case, subject: string): Promise<Message> {
  const m = methodOf(c);
  return create(m.output, (await fakeImpl(c)(create(m.input, c.input as never), fakeContext(c, subject))) as never);
}

async function expectedStream(c: Case, subject: string): Promise<Message[]> {
  const m = methodOf(c);
  const out: Message[] = [];
  for await (const x of fakeImpl(c)(create(m.input, c.input as never), fakeContext(c, subject)) as AsyncIterable<unknown>) out.push(create(m.output, x as never));
  return out;
}

type Protocol = "connect-json" | "connect-binary" | "connect-get" | "connect-h2" | "grpc" | "grpc-web";
const PROTOCOLS: Protocol[] = ["connect-json", "connect-binary", "connect-get", "connect-h2", "grpc", "grpc-web"];

function transportFor(p: Protocol, baseUrl: string): Transport {
  switch (p) {
    case "connect-json":
      return createConnectTransport({ baseUrl, httpVersion: "1.1", useBinaryFormat: false });
    case "connect-binary":
      return createConnectTransport({ baseUrl, httpVersion: "1.1", useBinaryFormat: true });
    case "connect-get":
      return createConnectTransport({ baseUrl, httpVersion: "1.1", useBinaryFormat: false, useHttpGet: true });
    case "connect-h2":
      return createConnectTransport({ baseUrl, httpVersion: "2", useBinaryFormat: false });
    case "grpc":
      return createGrpcTransport({ baseUrl });
    case "grpc-web":
      return createGrpcWebTransport({ baseUrl, httpVersion: "1.1" });
  }
}

async function callUnary(t: Transport, c: Case, token: string | undefined): Promise<Message> {
  const client = createClient(c.service, t) as unknown as Record<string, (i: unknown, o: unknown) => Promise<Message>>;
  return client[c.method](c.input, { headers: token ? { authorization: `Bearer ${token}` } : {} });
}

async function callStream(t: Transport, c: Case, token: string | undefined): Promise<Message[]> {
  const client = createClient(c.service, t) as unknown as Record<string, (i: unknown, o: unknown) => AsyncIterable<Message>>;
  const out: Message[] = [];
  for await (const m of client[c.method](c.input, { headers: token ? { authorization: `Bearer ${token}` } : {} })) out.push(m);
  return out;
}

/** Parses a complete SSE body into its `data:` payloads and error events. */
function parseSse(text: string): { data: unknown[]; errors: unknown[]; comments: string[] } {
  const data: unknown[] = [];
  const errors: unknown[] = [];
  const comments: string[] = [];
  for (const block of text.split("\n\n")) {
    if (!block.trim()) continue;
    const lines = block.split("\n");
    const event = lines.find((l) => l.startsWith("event: "))?.slice(7);
    const payload = lines.filter((l) => l.startsWith("data: ")).map((l) => l.slice(6)).join("\n");
    comments.push(...lines.filter((l) => l.startsWith(":")));
    if (!payload) continue;
    (event === "error" ? errors : data).push(JSON.parse(payload));
  }
  return { data, errors, comments };
}

function runCommand(cmd: string, args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(cmd, args, { timeout: 20_000 }, (err, stdout, stderr) => resolve({ code: err ? ((err as { code?: number }).code ?? 1) : 0, stdout, stderr }));
  });
}

let backends: FakeBackends;
let token: string;
beforeAll(async () => {
  backends = await startFakeBackends();
  token = await testToken("alice", ALL_SCOPES);
});
afterAll(() => backends.close());

describe.each([
  ["fast path on", true],
  ["fast path off", false],
])("gateway protocols (%s)", (_name, fastPath) => {
  let gw: TestGateway;
  beforeAll(async () => {
    gw = await startTestGateway(backends, { fastPath });
  });
  afterAll(() => gw.close());

  it("serves the method table from the contracts: every non-internal method, nothing else", () => {
    expect(gw.gateway.methods.map((m) => `${m.service.name}.${m.method.name}`).sort()).toEqual(
      [...UNARY, ...STREAMS].map((c) => `${c.service.name}.${methodOf(c).name}`).sort(),
    );
  });

  describe.each(PROTOCOLS)("%s", (protocol) => {
    it.each(UNARY.map((c) => [`${c.service.name}.${c.method}`, c] as const))("unary %s", async (_n, c) => {
      const got = await callUnary(transportFor(protocol, gw.url), c, c.auth ? token : undefined);
      const want = await expectedUnary(c, c.auth ? "alice" : "anonymous");
      expect(equals(methodOf(c).output, got, want)).toBe(true);
    });

    if (protocol !== "connect-get") {
      it.each(STREAMS.map((c) => [`${c.service.name}.${c.method}`, c] as const))("server stream %s", async (_n, c) => {
        const got = await callStream(transportFor(protocol, gw.url), c, c.auth ? token : undefined);
        const want = await expectedStream(c, c.auth ? "alice" : "anonymous");
        expect(got.length).toBe(want.length);
        got.forEach((m, i) => expect(equals(methodOf(c).output, m, want[i])).toBe(true));
      });
    }

    it("maps a backend error with its code and details", async () => {
      const client = createClient(CatalogService, transportFor(protocol, gw.url));
      const err = await client.getProduct({ id: "missing" }).then(
        () => undefined,
        (e: unknown) => ConnectError.from(e),
      );
      expect(err?.code).toBe(Code.NotFound);
      expect(err?.details.length).toBe(1);
    });

    it("refuses internal methods with Unimplemented", async () => {
      const inv = createClient(InventoryService, transportFor(protocol, gw.url));
      await expect(inv.reserve({ reservationId: "r" })).rejects.toMatchObject({ code: Code.Unimplemented });
      const pay = createClient(PaymentService, transportFor(protocol, gw.url));
      await expect(pay.authorize({})).rejects.toMatchObject({ code: Code.Unimplemented });
    });
  });

  describe("REST", () => {
    it.each(UNARY.map((c) => [`${c.rest.verb} ${c.rest.path}`, c] as const))("%s", async (_n, c) => {
      const headers: Record<string, string> = {};
      if (c.auth) headers.authorization = `Bearer ${token}`;
      if (c.rest.body !== undefined) headers["content-type"] = "application/json";
      const res = await fetch(gw.url + c.rest.path, { method: c.rest.verb, headers, body: c.rest.body === undefined ? undefined : JSON.stringify(c.rest.body) });
      expect(res.status).toBe(200);
      expect(res.headers.get("content-type")).toMatch(/^application\/json/);
      const want = await expectedUnary(c, c.auth ? "alice" : "anonymous");
      expect(await res.json()).toEqual(toJson(methodOf(c).output as DescMessage, want));
    });

    it("accepts a POST without a body where the body is optional", async () => {
      const res = await fetch(`${gw.url}/v1/orders/o9:cancel`, { method: "POST", headers: { authorization: `Bearer ${token}` } });
      expect(res.status).toBe(200);
      expect(await res.json()).toMatchObject({ order: { id: "o9", status: "ORDER_STATUS_CANCELLED" } });
    });

    it("maps backend errors to the status table with Connect's error JSON", async () => {
      const res = await fetch(`${gw.url}/v1/products/missing`);
      expect(res.status).toBe(404);
      const body = (await res.json()) as { code: string; message: string; details: unknown[] };
      expect(body.code).toBe("not_found");
      expect(body.details).toHaveLength(1);
    });

    it.each(STREAMS.map((c) => [`${c.rest.path}`, c] as const))("streams %s as Server-Sent Events", async (_n, c) => {
      const res = await fetch(gw.url + c.rest.path, { headers: c.auth ? { authorization: `Bearer ${token}` } : {} });
      expect(res.status).toBe(200);
      expect(res.headers.get("content-type")).toBe("text/event-stream");
      const sse = parseSse(await res.text());
      const want = await expectedStream(c, c.auth ? "alice" : "anonymous");
      expect(sse.errors).toEqual([]);
      expect(sse.data).toEqual(want.map((m) => toJson(methodOf(c).output as DescMessage, m)));
    });

    it("ends an SSE stream with an error event when the backend fails mid-stream", async () => {
      const res = await fetch(`${gw.url}/v1/stock/broken:watch`);
      expect(res.status).toBe(200);
      const sse = parseSse(await res.text());
      expect(sse.data).toEqual([{ stock: { productId: "broken" } }]);
      expect(sse.errors).toEqual([{ code: "aborted", message: "stock feed broke" }]);
    });

    it("keeps a quiet SSE stream alive with heartbeat comments and cancels the backend when the client leaves", async () => {
      const g = await startTestGateway(backends, { fastPath, sseHeartbeatMs: 50 });
      try {
        const before = quietWatchesCancelled();
        const ac = new AbortController();
        const res = await fetch(`${g.url}/v1/customers/quiet/notifications:watch`, { headers: { authorization: `Bearer ${token}` }, signal: ac.signal });
        expect(res.status).toBe(200);
        const reader = res.body!.getReader();
        let text = "";
        while (!text.includes(": heartbeat")) {
          const chunk = await reader.read();
          if (chunk.done) throw new Error(`stream ended before a heartbeat: ${text}`);
          text += new TextDecoder().decode(chunk.value);
        }
        ac.abort();
        await waitFor(() => quietWatchesCancelled() > before, { timeoutMs: 5_000, what: "backend stream cancelled" });
      } finally {
        await g.close();
      }
    });

    it("cancels the backend call of a unary request whose HTTP/1.1 client leaves, on a reused keep-alive connection", async () => {
      const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
      const request = (method: string, path: string, body?: string) =>
        http.request(`${gw.url}${path}`, { agent, method, headers: body === undefined ? {} : { "content-type": "application/json", "content-length": Buffer.byteLength(body) } });
      const call = (method: string, path: string, body?: string) =>
        new Promise<number>((resolve, reject) => {
          const req = request(method, path, body);
          req.on("response", (res) => {
            res.resume();
            res.on("end", () => resolve(res.statusCode!));
          });
          req.on("error", reject);
          req.end(body);
        });
      try {
        for (const [method, path, body] of [
          ["POST", "/catalog.v1.CatalogService/GetProduct", '{"id":"slow"}'],
          ["GET", "/v1/products/slow", undefined],
        ] as const) {
          // Calls before it on the same connection: the connection's signal must not be spent.
          expect(await call(method, method === "GET" ? "/v1/products/p1" : path, method === "GET" ? undefined : '{"id":"p1"}')).toBe(200);
          expect(await call(method, method === "GET" ? "/v1/products/p2" : path, method === "GET" ? undefined : '{"id":"p2"}')).toBe(200);
          const before = slowProductCallsCancelled();
          const received = backends.seen.length;
          const req = request(method, path, body);
          req.on("error", () => undefined);
          req.end(body);
          // The client leaves once the backend has the call.
          await waitFor(() => backends.seen.length > received, { timeoutMs: 5_000, what: "the slow call at the backend" });
          req.destroy();
          await waitFor(() => slowProductCallsCancelled() > before, { timeoutMs: 5_000, what: `backend call cancelled (${method} ${path})` });
        }
      } finally {
        agent.destroy();
      }
    });

    it("refuses a stream before it starts with a plain status", async () => {
      const res = await fetch(`${gw.url}/v1/customers/alice/notifications:watch`);
      expect(res.status).toBe(401);
      expect(res.headers.get("content-type")).toBe("application/json");
      expect(await res.json()).toMatchObject({ code: "unauthenticated" });
    });

    it("serves the OpenAPI document built from the same descriptors", async () => {
      const res = await fetch(`${gw.url}/openapi.json`);
      expect(res.status).toBe(200);
      expect(await res.json()).toEqual(JSON.parse(JSON.stringify(openApiDocument(exposedMethods()))));
    });
  });

  it(`served Connect JSON and REST unary calls on the ${fastPath ? "fast path" : "connect-node path"}`, () => {
    if (fastPath) expect(gw.gateway.served.fast).toBeGreaterThanOrEqual(UNARY.length * 2);
    else expect(gw.gateway.served.fast).toBe(0);
    expect(gw.gateway.served.connect).toBeGreaterThan(0);
    expect(gw.gateway.served.sse).toBeGreaterThanOrEqual(STREAMS.length);
  });

  it("never lets an internal method reach a backend", () => {
    expect(backends.seen.filter((s) => /\/(Reserve|Authorize|CommitReservation|ReleaseReservation|Capture|Void|Refund)$/.test(s.path))).toEqual([]);
  });
});

describe("reflection with buf curl", () => {
  let gw: TestGateway;
  const buf = join(__dirname, "..", "node_modules", ".bin", "buf");
  beforeAll(async () => {
    gw = await startTestGateway(backends);
  });
  afterAll(() => gw.close());

  it("lists exactly the exposed methods", async () => {
    const r = await runCommand(buf, ["curl", "--protocol", "grpc", "--http2-prior-knowledge", "--list-methods", gw.url]);
    expect(r.stderr).toBe("");
    expect(r.code).toBe(0);
    const listed = r.stdout.trim().split("\n").sort();
    expect(listed).toEqual(
      expect.arrayContaining(
        exposedMethods().map((m) => `${m.service.typeName}/${m.method.name}`),
      ),
    );
    expect(listed.filter((l) => !l.startsWith("grpc.reflection."))).toHaveLength(exposedMethods().length);
    expect(listed).not.toContain("inventory.v1.InventoryService/Reserve");
  });

  it("calls a method described by reflection", async () => {
    const r = await runCommand(buf, ["curl", "--protocol", "grpc", "--http2-prior-knowledge", "-d", '{"id":"p7"}', `${gw.url}/catalog.v1.CatalogService/GetProduct`]);
    expect(r.code).toBe(0);
    expect(JSON.parse(r.stdout)).toMatchObject({ product: { id: "p7", name: "Product p7" } });
  });

  it("sends a bearer token through buf curl", async () => {
    const r = await runCommand(buf, ["curl", "--protocol", "grpc", "--http2-prior-knowledge", "-H", `Authorization: Bearer ${token}`, "-d", '{"orderId":"o5"}', `${gw.url}/orders.v1.OrderService/GetOrder`]);
    expect(r.code).toBe(0);
    expect(JSON.parse(r.stdout)).toMatchObject({ order: { id: "o5", customerId: "alice" } });
  });
});
