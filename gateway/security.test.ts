import { Code, ConnectError, createClient } from "@connectrpc/connect";
import { createConnectTransport, createGrpcTransport } from "@connectrpc/connect-node";
import type { JSONWebKeySet, JWK } from "jose";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { CatalogService } from "../gen/catalog/v1/catalog_pb.js";
import { OrderService } from "../gen/orders/v1/orders_pb.js";
import { IDENTITY_HEADER, signIdentity } from "../mesh/auth/index.js";
import { jose } from "../mesh/auth/jose.js";
import { createMeshTransport, staticEndpoints } from "../mesh/client/index.js";
import { waitFor } from "../mesh/infra/index.js";
import { startFakeBackends, startTestGateway, TEST_IDENTITY_KEY, TEST_JWT_SECRET, testToken, type FakeBackends, type TestGateway } from "./testing.js";

let backends: FakeBackends;
beforeAll(async () => {
  backends = await startFakeBackends();
});
afterAll(() => backends.close());

const secretKey = new TextEncoder().encode(TEST_JWT_SECRET);

async function hsToken(claims: Record<string, unknown>, opts: { exp?: number | string; nbf?: number | string; key?: Uint8Array } = {}): Promise<string> {
  const jwt = new jose.SignJWT(claims).setProtectedHeader({ alg: "HS256" }).setSubject("alice").setIssuedAt();
  jwt.setExpirationTime(opts.exp ?? "1h");
  if (opts.nbf !== undefined) jwt.setNotBefore(opts.nbf);
  return jwt.sign(opts.key ?? secretKey);
}

function unsecuredToken(): string {
  const b64 = (o: object) => Buffer.from(JSON.stringify(o)).toString("base64url");
  return `${b64({ alg: "none", typ: "JWT" })}.${b64({ sub: "alice", scope: "orders:read orders:write", exp: Math.floor(Date.now() / 1000) + 3600 })}.`;
}

interface Probe {
  name: string;
  method: string;
  path: string;
  headers?: Record<string, string>;
  body?: string | Buffer;
  status: number;
  code: string;
  allow?: string;
}

function connectJson(path: string, body: string, headers: Record<string, string> = {}): Pick<Probe, "method" | "path" | "headers" | "body"> {
  return { method: "POST", path, headers: { "content-type": "application/json", ...headers }, body };
}

async function probes(): Promise<Probe[]> {
  const read = await testToken("alice", ["orders:read"]);
  const expired = await hsToken({ scope: "orders:read" }, { exp: Math.floor(Date.now() / 1000) - 3600 });
  const future = await hsToken({ scope: "orders:read" }, { nbf: Math.floor(Date.now() / 1000) + 3600 });
  const forged = await hsToken({ scope: "orders:read" }, { key: new TextEncoder().encode("another-secret-that-is-long-enough-000000000") });
  const bearer = (t: string) => ({ authorization: `Bearer ${t}` });
  const big = Buffer.alloc(1024 * 1024 + 1, 0x20);
  return [
    { name: "malformed protobuf", method: "POST", path: "/catalog.v1.CatalogService/GetProduct", headers: { "content-type": "application/proto" }, body: Buffer.from([0xff, 0xff, 0xff, 0xff]), status: 400, code: "invalid_argument" },
    { name: "invalid JSON (Connect)", ...connectJson("/catalog.v1.CatalogService/GetProduct", "{not json"), status: 400, code: "invalid_argument" },
    { name: "empty JSON body (Connect)", ...connectJson("/catalog.v1.CatalogService/GetProduct", ""), status: 400, code: "invalid_argument" },
    { name: "unknown JSON field (Connect)", ...connectJson("/catalog.v1.CatalogService/GetProduct", '{"id":"p1","nope":1}'), status: 400, code: "invalid_argument" },
    { name: "wrong JSON type (Connect)", ...connectJson("/catalog.v1.CatalogService/ListProducts", '{"pageSize":"many"}'), status: 400, code: "invalid_argument" },
    { name: "invalid JSON (REST)", method: "POST", path: "/v1/orders", headers: { "content-type": "application/json", ...bearer(read) }, body: "{oops", status: 400, code: "invalid_argument" },
    { name: "non-object JSON body (REST)", method: "POST", path: "/v1/orders/o1:cancel", headers: { "content-type": "application/json", ...bearer(read) }, body: "[1,2]", status: 400, code: "invalid_argument" },
    { name: "unknown query parameter", method: "GET", path: "/v1/products?nope=1", status: 400, code: "invalid_argument" },
    { name: "bad number in query", method: "GET", path: "/v1/products?pageSize=lots", status: 400, code: "invalid_argument" },
    { name: "repeated singular query parameter", method: "GET", path: "/v1/products?category=a&category=b", status: 400, code: "invalid_argument" },
    { name: "malformed percent-encoding", method: "GET", path: "/v1/products/%E0%A4%A", status: 400, code: "invalid_argument" },
    { name: "bad connect-timeout-ms", ...connectJson("/catalog.v1.CatalogService/GetProduct", '{"id":"p1"}', { "connect-timeout-ms": "soon" }), status: 400, code: "invalid_argument" },
    { name: "wrong content type (Connect)", method: "POST", path: "/catalog.v1.CatalogService/GetProduct", headers: { "content-type": "text/plain" }, body: '{"id":"p1"}', status: 415, code: "invalid_argument" },
    { name: "streaming content type on a unary method", method: "POST", path: "/catalog.v1.CatalogService/GetProduct", headers: { "content-type": "application/connect+json" }, body: "x", status: 415, code: "invalid_argument" },
    { name: "wrong content type (REST)", method: "POST", path: "/v1/orders", headers: { "content-type": "application/xml", ...bearer(read) }, body: "<order/>", status: 415, code: "invalid_argument" },
    { name: "gRPC over HTTP/1.1", method: "POST", path: "/catalog.v1.CatalogService/GetProduct", headers: { "content-type": "application/grpc" }, body: Buffer.alloc(5), status: 415, code: "invalid_argument" },
    { name: "wrong method (Connect)", method: "PUT", path: "/catalog.v1.CatalogService/GetProduct", status: 405, code: "unimplemented", allow: "POST, GET" },
    { name: "GET on a method with side effects", method: "GET", path: "/orders.v1.OrderService/CreateOrder", status: 405, code: "unimplemented", allow: "POST" },
    { name: "wrong method (REST)", method: "DELETE", path: "/v1/products", status: 405, code: "unimplemented", allow: "GET" },
    { name: "wrong method (REST custom verb)", method: "GET", path: "/v1/orders/o1:cancel", status: 405, code: "unimplemented", allow: "POST" },
    { name: "oversized body (Connect JSON)", ...connectJson("/catalog.v1.CatalogService/GetProduct", big.toString()), status: 413, code: "resource_exhausted" },
    { name: "oversized body (Connect binary)", method: "POST", path: "/catalog.v1.CatalogService/GetProduct", headers: { "content-type": "application/proto" }, body: big, status: 413, code: "resource_exhausted" },
    { name: "oversized body (REST)", method: "POST", path: "/v1/orders", headers: { "content-type": "application/json", ...bearer(read) }, body: big, status: 413, code: "resource_exhausted" },
    { name: "unknown route", method: "GET", path: "/v1/nothing/here", status: 404, code: "unimplemented" },
    { name: "unknown RPC", ...connectJson("/catalog.v1.CatalogService/DeleteEverything", "{}"), status: 404, code: "unimplemented" },
    { name: "internal method (Connect)", ...connectJson("/inventory.v1.InventoryService/Reserve", '{"reservationId":"r"}'), status: 404, code: "unimplemented" },
    { name: "internal method (Connect binary)", method: "POST", path: "/payments.v1.PaymentService/Capture", headers: { "content-type": "application/proto" }, body: Buffer.alloc(0), status: 404, code: "unimplemented" },
    { name: "missing token (REST)", method: "GET", path: "/v1/orders/o1", status: 401, code: "unauthenticated" },
    { name: "missing token (Connect)", ...connectJson("/orders.v1.OrderService/GetOrder", '{"orderId":"o1"}'), status: 401, code: "unauthenticated" },
    { name: "expired token", method: "GET", path: "/v1/orders/o1", headers: bearer(expired), status: 401, code: "unauthenticated" },
    { name: "token not yet valid", method: "GET", path: "/v1/orders/o1", headers: bearer(future), status: 401, code: "unauthenticated" },
    { name: "forged token", ...connectJson("/orders.v1.OrderService/GetOrder", '{"orderId":"o1"}', bearer(forged)), status: 401, code: "unauthenticated" },
    { name: "alg none token", method: "GET", path: "/v1/orders/o1", headers: bearer(unsecuredToken()), status: 401, code: "unauthenticated" },
    { name: "not a bearer token", method: "GET", path: "/v1/orders/o1", headers: { authorization: "Basic YWxpY2U6c2VjcmV0" }, status: 401, code: "unauthenticated" },
    { name: "garbage token on a public method", method: "GET", path: "/v1/products/p1", headers: bearer("abc.def.ghi"), status: 401, code: "unauthenticated" },
    { name: "missing scope (REST)", method: "POST", path: "/v1/orders", headers: { "content-type": "application/json", ...bearer(read) }, body: "{}", status: 403, code: "permission_denied" },
    { name: "missing scope (Connect)", ...connectJson("/orders.v1.OrderService/CancelOrder", '{"orderId":"o1"}', bearer(read)), status: 403, code: "permission_denied" },
    { name: "backend NotFound", method: "GET", path: "/v1/products/missing", status: 404, code: "not_found" },
  ];
}

function send(url: string, p: Pick<Probe, "method" | "path" | "headers" | "body">): Promise<Response> {
  return fetch(url + p.path, { method: p.method, headers: p.headers, body: p.body as BodyInit | undefined });
}

function expectCleanError(body: string): void {
  expect(body).not.toMatch(/\bat .+:\d+:\d+/);
  expect(body).not.toMatch(/"stack"/);
}

describe.each([
  ["fast path on", true],
  ["fast path off", false],
])("R11 bad input (%s)", (_n, fastPath) => {
  let gw: TestGateway;
  beforeAll(async () => {
    gw = await startTestGateway(backends, { fastPath });
  });
  afterAll(() => gw.close());

  it("answers every bad request with its documented status and a Connect error JSON", async () => {
    const results: Array<{ name: string; status: number; code: unknown; allow: string | null }> = [];
    const want: Array<{ name: string; status: number; code: string; allow: string | null }> = [];
    for (const p of await probes()) {
      const res = await send(gw.url, p);
      const text = await res.text();
      expect(res.headers.get("content-type")).toBe("application/json");
      expectCleanError(text);
      const body = JSON.parse(text) as { code: unknown; message: unknown };
      expect(typeof body.message).toBe("string");
      results.push({ name: p.name, status: res.status, code: body.code, allow: p.allow === undefined ? null : res.headers.get("allow") });
      want.push({ name: p.name, status: p.status, code: p.code, allow: p.allow ?? null });
    }
    expect(results).toEqual(want);
  });

  it("sends WWW-Authenticate with 401", async () => {
    const res = await fetch(`${gw.url}/v1/orders/o1`);
    expect(res.status).toBe(401);
    expect(res.headers.get("www-authenticate")).toMatch(/^Bearer /);
  });

  it("refuses an oversized chunked body without a length", async () => {
    const chunks = (async function* () {
      for (let i = 0; i < 20; i++) yield new Uint8Array(64 * 1024).fill(0x20);
    })();
    const res = await fetch(`${gw.url}/catalog.v1.CatalogService/GetProduct`, { method: "POST", headers: { "content-type": "application/json" }, body: chunks as never, duplex: "half" } as RequestInit);
    expect(res.status).toBe(413);
    expect(await res.json()).toMatchObject({ code: "resource_exhausted" });
  });

  it("gives gRPC clients status codes: Unauthenticated, PermissionDenied, ResourceExhausted", async () => {
    const t = createGrpcTransport({ baseUrl: gw.url });
    const orders = createClient(OrderService, t);
    await expect(orders.getOrder({ orderId: "o1" })).rejects.toMatchObject({ code: Code.Unauthenticated });
    const read = await testToken("alice", ["orders:read"]);
    await expect(orders.createOrder({}, { headers: { authorization: `Bearer ${read}` } })).rejects.toMatchObject({ code: Code.PermissionDenied });
    await expect(orders.getOrder({ orderId: "o1" }, { headers: { authorization: `Bearer ${read}` } })).resolves.toMatchObject({ order: { id: "o1" } });
    const catalog = createClient(CatalogService, t);
    await expect(catalog.getProduct({ id: "x".repeat(1024 * 1024 + 1) })).rejects.toMatchObject({ code: Code.ResourceExhausted });
  });
});

describe("tokens from a JWKS (RS256, ES256)", () => {
  let gw: TestGateway;
  let rsa: { privateKey: jose.KeyLike; jwk: JWK };
  let ec: { privateKey: jose.KeyLike; jwk: JWK };
  const keyPair = async (alg: "RS256" | "ES256", kid: string) => {
    const { privateKey, publicKey } = await jose.generateKeyPair(alg);
    return { privateKey, jwk: { ...(await jose.exportJWK(publicKey)), kid, alg, use: "sig" } };
  };
  const sign = (alg: string, kid: string, key: jose.KeyLike, claims: Record<string, unknown> = {}) =>
    new jose.SignJWT({ scope: "orders:read", ...claims }).setProtectedHeader({ alg, kid }).setSubject("carol").setIssuer("https://idp.test").setAudience("shop").setExpirationTime("5m").sign(key);

  beforeAll(async () => {
    rsa = await keyPair("RS256", "rsa-1");
    ec = await keyPair("ES256", "ec-1");
    gw = await startTestGateway(backends, { jwt: { jwks: { keys: [rsa.jwk, ec.jwk] } as JSONWebKeySet, issuer: "https://idp.test", audience: "shop" } });
  });
  afterAll(() => gw.close());

  const getOrder = (token: string) => fetch(`${gw.url}/v1/orders/o1`, { headers: { authorization: `Bearer ${token}` } });

  it("accepts RS256 and ES256 tokens and forwards their subject", async () => {
    for (const token of [await sign("RS256", "rsa-1", rsa.privateKey), await sign("ES256", "ec-1", ec.privateKey)]) {
      const res = await getOrder(token);
      expect(res.status).toBe(200);
      expect(await res.json()).toMatchObject({ order: { customerId: "carol" } });
    }
  });

  it("refuses unknown kid, wrong issuer, wrong audience and HS256 when only a JWKS is configured", async () => {
    const other = await keyPair("RS256", "rsa-unknown");
    const bad = [
      await sign("RS256", "rsa-unknown", other.privateKey),
      await new jose.SignJWT({ scope: "orders:read" }).setProtectedHeader({ alg: "RS256", kid: "rsa-1" }).setSubject("carol").setIssuer("https://evil.test").setAudience("shop").setExpirationTime("5m").sign(rsa.privateKey),
      await new jose.SignJWT({ scope: "orders:read" }).setProtectedHeader({ alg: "RS256", kid: "rsa-1" }).setSubject("carol").setIssuer("https://idp.test").setAudience("other").setExpirationTime("5m").sign(rsa.privateKey),
      await testToken("carol", ["orders:read"]),
    ];
    for (const token of bad) {
      const res = await getOrder(token);
      expect(res.status).toBe(401);
      expect(await res.json()).toMatchObject({ code: "unauthenticated" });
    }
  });

  it("reads scopes from an scp array", async () => {
    const token = await sign("ES256", "ec-1", ec.privateKey, { scope: undefined, scp: ["orders:read", "orders:write"] });
    const res = await fetch(`${gw.url}/v1/orders/o1:cancel`, { method: "POST", headers: { authorization: `Bearer ${token}` } });
    expect(res.status).toBe(200);
  });
});

describe("tokens from a remote JWKS", () => {
  let gw: TestGateway;
  let idp: Server;
  let served: JSONWebKeySet;
  let fetches = 0;
  beforeAll(async () => {
    idp = createServer((_req, res) => {
      fetches++;
      res.writeHead(200, { "content-type": "application/json" });
      res.end(JSON.stringify(served));
    });
    await new Promise<void>((r) => idp.listen(0, "127.0.0.1", r));
    const url = `http://127.0.0.1:${(idp.address() as AddressInfo).port}/jwks.json`;
    served = { keys: [] };
    // A short cooldown so the test sees the rotation at once (production: 30 s).
    gw = await startTestGateway(backends, { jwt: { jwksUrl: url, jwksCooldownMs: 50 } });
  });
  afterAll(async () => {
    await gw.close();
    idp.closeAllConnections();
    await new Promise((r) => idp.close(r));
  });

  it("picks up a rotated key after an unknown kid", async () => {
    const k1 = await jose.generateKeyPair("ES256");
    const k2 = await jose.generateKeyPair("ES256");
    served = { keys: [{ ...(await jose.exportJWK(k1.publicKey)), kid: "k1", alg: "ES256" }] };
    const token = (kid: string, key: jose.KeyLike) => new jose.SignJWT({ scope: "orders:read" }).setProtectedHeader({ alg: "ES256", kid }).setSubject("dave").setExpirationTime("5m").sign(key);
    const t1 = await token("k1", k1.privateKey);
    const t2 = await token("k2", k2.privateKey);
    const get = (t: string) => fetch(`${gw.url}/v1/orders/o1`, { headers: { authorization: `Bearer ${t}` } }).then((r) => r.status);
    expect(await get(t1)).toBe(200);
    expect(await get(t2)).toBe(401);
    served = { keys: [...served.keys, { ...(await jose.exportJWK(k2.publicKey)), kid: "k2", alg: "ES256" }] };
    await waitFor(async () => (await get(t2)) === 200, { timeoutMs: 5_000, what: "rotated key accepted" });
    expect(fetches).toBeGreaterThanOrEqual(2);
  });
});

describe("identity forwarding", () => {
  let gw: TestGateway;
  beforeAll(async () => {
    gw = await startTestGateway(backends);
  });
  afterAll(() => gw.close());

  const spoofHeaders = async () => ({
    [IDENTITY_HEADER]: await signIdentity({ subject: "mallory", scopes: ["orders:read", "orders:write"] }, "an-attacker-guess-of-the-key-000000000000"),
    "x-user-id": "mallory",
    "x-forwarded-user": "mallory",
    "x-forwarded-identity": "mallory",
    "x-authenticated-user": "mallory",
  });

  it("strips client-supplied identity headers and forwards the verified subject", async () => {
    const token = await testToken("alice", ["orders:read"]);
    for (const fast of [true, false]) {
      void fast;
      backends.seen.length = 0;
      const res = await fetch(`${gw.url}/v1/orders/o1`, { headers: { authorization: `Bearer ${token}`, ...(await spoofHeaders()) } });
      expect(res.status).toBe(200);
      expect(await res.json()).toMatchObject({ order: { customerId: "alice" } });
      const call = backends.seen.at(-1)!;
      expect(call.subject).toBe("alice");
      for (const h of ["x-user-id", "x-forwarded-user", "x-forwarded-identity", "x-authenticated-user", "authorization"]) expect(call.header.get(h)).toBeNull();
    }
  });

  it("forwards no identity for an anonymous caller, whatever the client sends", async () => {
    backends.seen.length = 0;
    const client = createClient(CatalogService, createConnectTransport({ baseUrl: gw.url, httpVersion: "1.1", useBinaryFormat: false }));
    await client.getProduct({ id: "p1" }, { headers: await spoofHeaders() });
    const call = backends.seen.at(-1)!;
    expect(call.subject).toBeUndefined();
    expect(call.header.get(IDENTITY_HEADER)).toBeNull();
    expect(call.header.get("x-user-id")).toBeNull();
  });

  it("a direct caller with a forged identity gets Unauthenticated from the backend", async () => {
    const t = createMeshTransport({ endpoints: staticEndpoints(backends.addresses.get("orders.v1.OrderService")!), serviceName: "orders" });
    try {
      const orders = createClient(OrderService, t);
      const forged = [
        await signIdentity({ subject: "mallory", scopes: ["orders:read"] }, "an-attacker-guess-of-the-key-000000000000"),
        unsecuredToken(),
        "not-a-jws",
      ];
      for (const jws of forged) {
        await expect(orders.getOrder({ orderId: "o1" }, { headers: { [IDENTITY_HEADER]: jws } })).rejects.toMatchObject({ code: Code.Unauthenticated });
      }
      const genuine = await signIdentity({ subject: "erin", scopes: ["orders:read"] }, TEST_IDENTITY_KEY);
      await expect(orders.getOrder({ orderId: "o1" }, { headers: { [IDENTITY_HEADER]: genuine } })).resolves.toMatchObject({ order: { customerId: "erin" } });
    } finally {
      t.close();
    }
  });
});

describe("rate limiting", () => {
  let gw: TestGateway;
  beforeAll(async () => {
    // Tiny bucket so a burst of 4 exceeds it; one token per second refills it.
    gw = await startTestGateway(backends, { rateLimit: { rps: 1, burst: 3 } });
  });
  afterAll(() => gw.close());

  it("answers 429 with Retry-After beyond the burst, then recovers", async () => {
    const statuses: number[] = [];
    let limited: Response | undefined;
    for (let i = 0; i < 4; i++) {
      const res = await fetch(`${gw.url}/v1/products/p1`);
      statuses.push(res.status);
      if (res.status === 429) limited = res;
      else await res.arrayBuffer();
    }
    expect(statuses).toEqual([200, 200, 200, 429]);
    expect(limited!.headers.get("retry-after")).toBe("1");
    expect(await limited!.json()).toMatchObject({ code: "resource_exhausted" });
    // Connect clients see ResourceExhausted too.
    const client = createClient(CatalogService, createConnectTransport({ baseUrl: gw.url, httpVersion: "1.1", useBinaryFormat: false }));
    await expect(client.getProduct({ id: "p1" })).rejects.toMatchObject({ code: Code.ResourceExhausted });
    // A caller with a token has its own bucket.
    const token = await testToken("frank", []);
    expect((await fetch(`${gw.url}/v1/products/p1`, { headers: { authorization: `Bearer ${token}` } })).status).toBe(200);
    await waitFor(async () => (await fetch(`${gw.url}/v1/products/p1`)).status === 200, { timeoutMs: 3_000, intervalMs: 250, what: "bucket refilled" });
  });
});

describe("CORS, deadlines and request ids", () => {
  let gw: TestGateway;
  beforeAll(async () => {
    gw = await startTestGateway(backends, { corsOrigins: ["https://shop.example.com"], deadlines: { maxMs: 300 } });
  });
  afterAll(() => gw.close());

  it("answers a preflight from an allowed origin", async () => {
    const res = await fetch(`${gw.url}/orders.v1.OrderService/CreateOrder`, {
      method: "OPTIONS",
      headers: { origin: "https://shop.example.com", "access-control-request-method": "POST", "access-control-request-headers": "authorization,content-type,connect-protocol-version" },
    });
    expect(res.status).toBe(204);
    expect(res.headers.get("access-control-allow-origin")).toBe("https://shop.example.com");
    expect(res.headers.get("access-control-allow-methods")).toContain("POST");
    const allowed = res.headers.get("access-control-allow-headers")!.toLowerCase();
    for (const h of ["authorization", "content-type", "connect-protocol-version", "x-grpc-web"]) expect(allowed).toContain(h);
    expect(res.headers.get("access-control-allow-credentials")).toBeNull();
  });

  it("refuses a preflight from another origin and adds no CORS headers for it", async () => {
    const pre = await fetch(`${gw.url}/v1/products`, { method: "OPTIONS", headers: { origin: "https://evil.example.com", "access-control-request-method": "GET" } });
    expect(pre.status).toBe(403);
    expect(pre.headers.get("access-control-allow-origin")).toBeNull();
    expect(await pre.json()).toMatchObject({ code: "permission_denied" });
    const res = await fetch(`${gw.url}/v1/products`, { headers: { origin: "https://evil.example.com" } });
    expect(res.status).toBe(200);
    expect(res.headers.get("access-control-allow-origin")).toBeNull();
  });

  it("exposes Connect and gateway headers to an allowed origin", async () => {
    const res = await fetch(`${gw.url}/v1/products`, { headers: { origin: "https://shop.example.com" } });
    expect(res.headers.get("access-control-allow-origin")).toBe("https://shop.example.com");
    const exposed = res.headers.get("access-control-expose-headers")!.toLowerCase();
    for (const h of ["x-request-id", "retry-after", "grpc-status", "grpc-message"]) expect(exposed).toContain(h);
  });

  it.each([
    ["fast path on", true],
    ["fast path off", false],
  ])("caps a client's deadline at the maximum (%s)", async (_n, fastPath) => {
    const g = fastPath ? gw : await startTestGateway(backends, { fastPath: false, deadlines: { maxMs: 300 } });
    try {
      let started = Date.now();
      const res = await fetch(`${g.url}/v1/products/slow`, { headers: { "connect-timeout-ms": "5000" } });
      const restMs = Date.now() - started;
      expect(res.status).toBe(504);
      expect(await res.json()).toMatchObject({ code: "deadline_exceeded" });
      started = Date.now();
      const client = createClient(CatalogService, createConnectTransport({ baseUrl: g.url, httpVersion: "1.1", useBinaryFormat: false }));
      await expect(client.getProduct({ id: "slow" }, { timeoutMs: 5_000 })).rejects.toMatchObject({ code: Code.DeadlineExceeded });
      const connectMs = Date.now() - started;
      for (const ms of [restMs, connectMs]) {
        expect(ms).toBeGreaterThanOrEqual(280);
        expect(ms).toBeLessThan(1_000);
      }
    } finally {
      if (g !== gw) await g.close();
    }
  });

  it("applies the maximum over gRPC too", async () => {
    const client = createClient(CatalogService, createGrpcTransport({ baseUrl: gw.url }));
    const started = Date.now();
    const err = await client.getProduct({ id: "slow" }, { timeoutMs: 5_000 }).catch((e: unknown) => ConnectError.from(e));
    expect(err).toMatchObject({ code: Code.DeadlineExceeded });
    expect(Date.now() - started).toBeLessThan(1_000);
  });

  it("echoes a well-formed request id, replaces a malformed one, and forwards it", async () => {
    backends.seen.length = 0;
    const a = await fetch(`${gw.url}/v1/products/p1`, { headers: { "x-request-id": "req-123.abc" } });
    expect(a.headers.get("x-request-id")).toBe("req-123.abc");
    expect(backends.seen.at(-1)!.header.get("x-request-id")).toBe("req-123.abc");
    const b = await fetch(`${gw.url}/v1/products/p1`, { headers: { "x-request-id": "no spaces allowed; <script>" } });
    expect(b.headers.get("x-request-id")).toMatch(/^[0-9a-f-]{36}$/);
    const c = await fetch(`${gw.url}/v1/nothing`);
    expect(c.status).toBe(404);
    expect(c.headers.get("x-request-id")).toMatch(/^[0-9a-f-]{36}$/);
    const client = createClient(CatalogService, createGrpcTransport({ baseUrl: gw.url }));
    let header: Headers | undefined;
    await client.getProduct({ id: "p1" }, { headers: { "x-request-id": "grpc-req-1" }, onHeader: (h) => (header = h) });
    expect(header?.get("x-request-id")).toBe("grpc-req-1");
  });
});
