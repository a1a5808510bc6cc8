import { create, toBinary } from "@bufbuild/protobuf";
import * as http from "node:http";
import * as http2 from "node:http2";
import * as net from "node:net";
import { setFlagsFromString } from "node:v8";
import { runInNewContext } from "node:vm";
import { GetProductRequestSchema } from "../gen/catalog/v1/catalog_pb.js";
import { CreateOrderRequestSchema } from "../gen/orders/v1/orders_pb.js";
import { exposedMethods } from "./methods.js";
import { startFakeBackends, startTestGateway, testToken, type FakeBackends, type TestGateway } from "./testing.js";

/**
 * R11 fuzz: thousands of random requests (methods, paths, headers, bodies, raw bytes, HTTP/2)
 * against a gateway with healthy backends, on loopback only, 16 in flight. Passes when no
 * response is an unexpected 5xx, no body carries a stack trace, the gateway still answers, and
 * memory stays bounded.
 */

// 10,000 against the default configuration (fast path on); fewer against the connect-node path,
// which the protocol suites cover too, to keep the file under ~40 s on a loaded 2-core machine.
const REQUESTS = Number(process.env.FUZZ_N ?? 10_000);
const CONCURRENCY = 16;
const SEED = 0x5eed;

function prng(seed: number): () => number {
  // mulberry32: small, fast, and reproducible from the seed in a failure report.
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

interface FuzzRequest {
  transport: "h1" | "h2" | "raw";
  method: string;
  path: string;
  headers: Record<string, string>;
  body?: Buffer;
  raw?: Buffer;
}

interface Outcome {
  status: number;
  body: string;
}

function gcNow(): void {
  setFlagsFromString("--expose-gc");
  (runInNewContext("gc") as () => void)();
}

describe("R11 fuzz", () => {
  let backends: FakeBackends;
  let valid: string;
  let expired: string;
  beforeAll(async () => {
    backends = await startFakeBackends();
    valid = await testToken("fuzzer", ["orders:read", "orders:write", "payments:read", "notifications:read"]);
    expired = await testToken("fuzzer", ["orders:read"], { ttlSec: -60 });
  });
  afterAll(() => backends.close());

  function generator(rand: () => number): () => FuzzRequest {
    const pick = <T>(xs: readonly T[]): T => xs[Math.floor(rand() * xs.length)];
    const int = (n: number) => Math.floor(rand() * n);
    // Random bytes are windows of one seeded pool: generating them per request would cost more
    // CPU than the gateway spends answering.
    const pool = Buffer.alloc(64 * 1024);
    for (let i = 0; i < pool.length; i++) pool[i] = int(256);
    const bytes = (n: number) => {
      const start = int(pool.length - n);
      return Buffer.from(pool.subarray(start, start + n));
    };
    const methods = exposedMethods();
    const rpcPaths = [
      ...methods.map((m) => m.rpcPath),
      "/inventory.v1.InventoryService/Reserve",
      "/payments.v1.PaymentService/Capture",
      "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo",
      "/catalog.v1.CatalogService/",
      "/catalog.v1.CatalogService",
    ];
    const ids = ["p1", "o1", "missing", "broken", "a%2Fb", "%E2%9C%93", "%", "%zz", "..", "", "x:y", "ü", "😀", "a".repeat(300)];
    const unicode = () => Array.from({ length: 1 + int(20) }, () => String.fromCodePoint(pick([0x41 + int(26), 0xe9, 0x4e2d, 0x1f600, 0x202e, 0x0]))).join("");
    const restPaths = () => {
      const m = pick(methods.filter((x) => x.rest));
      let p = m.rest!.template.replace(/\{[^}]+\}/g, () => pick(ids));
      if (rand() < 0.3) p += `?${pick(["pageSize", "page_size", "category", "query", "nope", "a.b", "pageToken", "customerId", ""])}=${encodeURIComponent(pick(["1", "-5", "abc", "true", "1e99", unicode()]))}`;
      if (rand() < 0.1) p += `&${pick(["pageSize", "x"])}=${pick(["2", "%", "%ff"])}`;
      return p;
    };
    const randomPath = () => {
      const r = rand();
      if (r < 0.35) return pick(rpcPaths);
      if (r < 0.7) return restPaths();
      if (r < 0.78) return pick(["/", "/openapi.json", "/healthz", "/v1", "/v1/", "//v1/products", "/v1/products/", "/v1/products/p1/extra", "*"]);
      if (r < 0.85) return "/" + encodeURIComponent(unicode());
      if (r < 0.9) return "/" + "a/".repeat(int(2000));
      return "/" + Array.from({ length: int(60) }, () => pick(["%", "..", "/", "?", "#", ":", "{", "}", "x", "%00", "%2e", "\u00ff"])).join("");
    };
    const contentTypes = ["application/json", "application/json; charset=utf-8", "application/proto", "application/connect+json", "application/connect+proto", "application/grpc-web+proto", "application/grpc-web-text", "application/grpc", "text/plain", "multipart/form-data; boundary=x", "", "application/json; charset=latin1", "*/*"];
    const randomJson = (depth: number): unknown => {
      const r = rand();
      if (depth > 3 || r < 0.3) return pick([0, -1, 1.5, 1e308, "x", "", unicode(), true, null, "9007199254740993"]);
      if (r < 0.5) return Array.from({ length: int(4) }, () => randomJson(depth + 1));
      const o: Record<string, unknown> = {};
      for (let i = 0; i < int(5); i++) o[pick(["id", "productId", "orderId", "pageSize", "items", "customerId", "idempotencyKey", "quantity", "reason", "query", "__proto__", "constructor", unicode()])] = randomJson(depth + 1);
      return o;
    };
    const body = (): Buffer | undefined => {
      const r = rand();
      if (r < 0.15) return undefined;
      if (r < 0.35) return Buffer.from(JSON.stringify(randomJson(0)));
      if (r < 0.45) return Buffer.from(JSON.stringify({ id: pick(ids), orderId: pick(ids), productId: pick(ids) }));
      if (r < 0.55) return Buffer.from(toBinary(GetProductRequestSchema, create(GetProductRequestSchema, { id: pick(ids) })));
      if (r < 0.6) return Buffer.from(toBinary(CreateOrderRequestSchema, create(CreateOrderRequestSchema, { idempotencyKey: "k", items: [{ productId: "p1", quantity: int(5) }] })));
      if (r < 0.8) return bytes(int(512));
      if (r < 0.9) return Buffer.from(`{"id":"${unicode()}"`);
      if (r < 0.99) return bytes(int(20_000));
      return Buffer.alloc(1024 * 1024 + int(1024), 0x7b);
    };
    const auth = () => pick([undefined, undefined, `Bearer ${valid}`, `Bearer ${expired}`, "Bearer abc.def.ghi", "Bearer", "Basic Zm9vOmJhcg==", `Bearer ${valid.slice(0, -3)}AAA`, "Bearer eyJhbGciOiJub25lIn0.eyJzdWIiOiJ4In0.", `Bearer ${unicode()}`.replace(/[^\x20-\x7e]/g, "x")]);
    const raw = (): Buffer => {
      const r = rand();
      if (r < 0.3) return bytes(1 + int(200));
      if (r < 0.5) return Buffer.from(`${pick(["GET", "POST", "BREW", "G\x00T"])} ${randomPath()} HTTP/${pick(["1.1", "1.0", "2.0", "9.9", "x"])}\r\nHost: x\r\n${pick(["", "Content-Length: -1\r\n", "Content-Length: 5\r\nContent-Length: 6\r\n", "Transfer-Encoding: chunked\r\n", "X: \x01\r\n", "Bad Header\r\n"])}\r\n${pick(["", "zz\r\n", "0\r\n\r\n"])}`, "latin1");
      if (r < 0.7) return Buffer.concat([Buffer.from("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"), bytes(int(300))]);
      if (r < 0.85) return Buffer.from(`GET /${"x".repeat(20_000 + int(50_000))} HTTP/1.1\r\nHost: x\r\n\r\n`);
      return Buffer.from(`POST /catalog.v1.CatalogService/GetProduct HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{"id":`);
    };
    return () => {
      const t = rand();
      if (t < 0.02) return { transport: "raw", method: "", path: "", headers: {}, raw: raw() };
      const headers: Record<string, string> = {};
      const ct = pick(contentTypes);
      if (ct) headers["content-type"] = ct;
      const a = auth();
      if (a) headers.authorization = a;
      if (rand() < 0.1) headers["connect-timeout-ms"] = pick(["1000", "abc", "-1", "99999999999", "5000"]);
      if (rand() < 0.05) headers["content-encoding"] = pick(["gzip", "br", "identity", "zstd", "x"]);
      if (rand() < 0.1) headers.origin = pick(["https://shop.example.com", "https://evil.example.com", "null"]);
      if (rand() < 0.05) headers["access-control-request-method"] = "POST";
      if (rand() < 0.1) headers["x-request-id"] = pick(["abc", "a b", "x".repeat(500), "ü"]).replace(/[^\x20-\x7e]/g, "?");
      if (rand() < 0.1) headers["meshwork-identity"] = "forged.identity.header";
      if (rand() < 0.05) headers["connect-protocol-version"] = pick(["1", "2", "x"]);
      if (rand() < 0.05) headers["grpc-timeout"] = pick(["1S", "100m", "x", "99999999H"]);
      const method = pick(["GET", "GET", "POST", "POST", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "HEAD"]);
      return { transport: t < 0.15 ? "h2" : "h1", method, path: randomPath(), headers, body: method === "GET" || method === "HEAD" ? undefined : body() };
    };
  }

  function sendH1(agent: http.Agent, port: number, r: FuzzRequest): Promise<Outcome> {
    return new Promise((resolve) => {
      let req: http.ClientRequest;
      try {
        req = http.request({ host: "127.0.0.1", port, method: r.method, path: r.path, headers: r.headers, agent }, (res) => {
          const chunks: Buffer[] = [];
          res.on("data", (c: Buffer) => chunks.length < 64 && chunks.push(c));
          res.on("end", () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString("utf8") }));
          res.on("error", () => resolve({ status: res.statusCode ?? 0, body: "" }));
        });
      } catch {
        // The client refused to build the request (e.g. an unescaped path): nothing was sent.
        return resolve({ status: 0, body: "" });
      }
      req.setTimeout(10_000, () => req.destroy());
      req.on("error", () => resolve({ status: 0, body: "" }));
      req.end(r.body);
    });
  }

  function sendH2(session: http2.ClientHttp2Session, r: FuzzRequest): Promise<Outcome> {
    return new Promise((resolve) => {
      let stream: http2.ClientHttp2Stream;
      try {
        stream = session.request({ ":method": r.method, ":path": r.path, ...r.headers });
      } catch {
        return resolve({ status: 0, body: "" });
      }
      let status = 0;
      const chunks: Buffer[] = [];
      stream.on("response", (h) => (status = Number(h[":status"])));
      stream.on("data", (c: Buffer) => chunks.length < 64 && chunks.push(c));
      stream.on("end", () => resolve({ status, body: Buffer.concat(chunks).toString("utf8") }));
      stream.on("error", () => resolve({ status, body: "" }));
      stream.on("close", () => resolve({ status, body: Buffer.concat(chunks).toString("utf8") }));
      stream.setTimeout(10_000, () => stream.close());
      // Node's HTTP/2 client half-closes GET, HEAD and DELETE streams itself: no body for those.
      stream.end(r.method === "DELETE" ? undefined : r.body);
    });
  }

  function sendRaw(port: number, r: FuzzRequest): Promise<Outcome> {
    return new Promise((resolve) => {
      const socket = net.connect(port, "127.0.0.1");
      const chunks: Buffer[] = [];
      const done = () => {
        const text = Buffer.concat(chunks).toString("latin1");
        const m = /^HTTP\/1\.[01] (\d{3})/.exec(text);
        resolve({ status: m ? Number(m[1]) : 0, body: text.slice(text.indexOf("\r\n\r\n") + 4) });
      };
      // The gateway rightly waits for the rest of a truncated request; do not wait with it.
      socket.setTimeout(100, () => socket.destroy());
      socket.on("data", (c: Buffer) => {
        chunks.push(c);
        // One response is enough: the gateway may keep a valid connection open.
        if (/\r\n\r\n/.test(Buffer.concat(chunks).toString("latin1"))) socket.end();
      });
      socket.on("error", () => undefined);
      socket.on("close", done);
      socket.write(r.raw!);
    });
  }

  it.each([
    ["fast path on", true, REQUESTS],
    ["fast path off", false, Math.ceil(REQUESTS * 0.2)],
  ])("survives random requests without unexpected 5xx (%s)", async (_n, fastPath, total) => {
    const gw: TestGateway = await startTestGateway(backends, { fastPath, corsOrigins: ["https://shop.example.com"], deadlines: { maxMs: 5_000 } });
    const agent = new http.Agent({ keepAlive: true, maxSockets: CONCURRENCY });
    let session = http2.connect(gw.url);
    session.on("error", () => undefined);
    try {
      const next = generator(prng(SEED + (fastPath ? 1 : 2)));
      const byStatus = new Map<number, number>();
      const unexpected: Array<{ req: Omit<FuzzRequest, "body" | "raw">; status: number; body: string }> = [];
      gcNow();
      const before = process.memoryUsage();
      let sent = 0;
      const worker = async () => {
        while (sent < total) {
          sent++;
          const r = next();
          if (r.transport === "h2" && (session.closed || session.destroyed)) {
            session = http2.connect(gw.url);
            session.on("error", () => undefined);
          }
          const out = r.transport === "raw" ? await sendRaw(gw.port, r) : r.transport === "h2" ? await sendH2(session, r) : await sendH1(agent, gw.port, r);
          byStatus.set(out.status, (byStatus.get(out.status) ?? 0) + 1);
          if (out.status >= 500 || /\n\s+at .+:\d+:\d+/.test(out.body) || /"stack"/.test(out.body)) {
            unexpected.push({ req: { transport: r.transport, method: r.method, path: r.path.slice(0, 200), headers: r.headers }, status: out.status, body: out.body.slice(0, 300) });
          }
        }
      };
      const started = Date.now();
      await Promise.all(Array.from({ length: CONCURRENCY }, worker));
      const elapsedMs = Date.now() - started;
      gcNow();
      const after = process.memoryUsage();
      // The gateway still serves after the storm.
      const health = await fetch(`${gw.url}/healthz`);
      expect(health.status).toBe(200);
      const ok = await fetch(`${gw.url}/v1/products/p1`);
      expect(ok.status).toBe(200);

      const summary = { elapsedMs, statuses: Object.fromEntries([...byStatus].sort((a, b) => a[0] - b[0])), heapGrowthMiB: (after.heapUsed - before.heapUsed) / 2 ** 20, rssGrowthMiB: (after.rss - before.rss) / 2 ** 20 };
      process.stdout.write(`fuzz (${fastPath ? "fast" : "connect"}): ${JSON.stringify(summary)}\n`);
      expect(unexpected.slice(0, 5)).toEqual([]);
      expect(sent).toBeGreaterThanOrEqual(total);
      // Generous bounds: this process also holds jest, the backends and the clients.
      expect(summary.heapGrowthMiB).toBeLessThan(64);
      expect(summary.rssGrowthMiB).toBeLessThan(256);
      // Enough of the traffic got past parsing to exercise forwarding.
      expect(byStatus.get(200) ?? 0).toBeGreaterThan(total / 50);
    } finally {
      agent.destroy();
      session.destroy();
      await gw.close();
    }
    // ~15 s on an idle 2-core machine; the margin is for CI running other suites beside it.
  }, 120_000);
});
