import { create } from "@bufbuild/protobuf";
import { Code, ConnectError, createClient, type Interceptor } from "@connectrpc/connect";
import { loadSync } from "@grpc/proto-loader";
import { loadPackageDefinition, Server, ServerCredentials, type GrpcObject, type ServiceClientConstructor } from "@grpc/grpc-js";
import { join } from "node:path";
import { CatalogService, GetProductResponseSchema, ProductSchema } from "../../gen/catalog/v1/catalog_pb.js";
import { InventoryService } from "../../gen/inventory/v1/inventory_pb.js";
import { startTestGrpcServer } from "../testing/grpc-server.js";
import { setMetadataHeader } from "../grpc/index.js";
import { createMeshTransport, outgoingMetadata, staticEndpoints, type MeshTransport } from "./index.js";

type TestServer = Awaited<ReturnType<typeof startTestGrpcServer>>;
const cleanup: Array<() => void> = [];
afterEach(() => {
  while (cleanup.length) cleanup.pop()!();
});

async function catalogReplica(name: string, behave: { delayMs?: number; fail?: () => boolean } = {}): Promise<TestServer & { calls: number }> {
  const state = { calls: 0 };
  const s = await startTestGrpcServer(CatalogService, {
    async getProduct(req) {
      state.calls++;
      if (behave.fail?.()) throw new ConnectError("replica broken", Code.Unavailable);
      if (behave.delayMs) await new Promise((r) => setTimeout(r, behave.delayMs));
      if (req.id === "missing") throw new ConnectError(`product ${req.id} not found`, Code.NotFound);
      return { product: { id: req.id, name: name } };
    },
  });
  cleanup.push(s.close);
  return Object.defineProperty(s, "calls", { get: () => state.calls }) as TestServer & { calls: number };
}

function transportFor(addresses: string[], extra: Partial<Parameters<typeof createMeshTransport>[0]> = {}): MeshTransport {
  const t = createMeshTransport({ endpoints: staticEndpoints(...addresses), serviceName: "catalog", ...extra });
  cleanup.push(() => t.close());
  return t;
}

describe("mesh client over grpc-js", () => {
  it("calls a typed unary method and maps errors to their codes", async () => {
    const a = await catalogReplica("a");
    const client = createClient(CatalogService, transportFor([a.address]));
    const res = await client.getProduct({ id: "p1" });
    expect(res.product?.id).toBe("p1");
    await expect(client.getProduct({ id: "missing" })).rejects.toMatchObject({ code: Code.NotFound });
    await expect(client.listProducts({})).rejects.toMatchObject({ code: Code.Unimplemented });
  });

  it("enforces the caller's deadline", async () => {
    const slow = await catalogReplica("slow", { delayMs: 2_000 });
    const client = createClient(CatalogService, transportFor([slow.address]));
    const started = Date.now();
    await expect(client.getProduct({ id: "p" }, { timeoutMs: 100 })).rejects.toMatchObject({ code: Code.DeadlineExceeded });
    expect(Date.now() - started).toBeLessThan(1_000);
  });

  it("streams server messages and propagates headers", async () => {
    const s = await startTestGrpcServer(InventoryService, {
      async *watchStock(req, ctx) {
        ctx.responseHeader.set("x-replica", "one");
        for (let i = 0; i < 3; i++) yield { stock: { productId: req.productId, available: i } };
      },
    });
    cleanup.push(s.close);
    const client = createClient(InventoryService, transportFor([s.address]));
    const seen: number[] = [];
    for await (const m of client.watchStock({ productId: "p" })) seen.push(m.stock!.available);
    expect(seen).toEqual([0, 1, 2]);
  });

  it("sends the caller's headers and the interceptors' outgoing metadata, which wins on a shared name", async () => {
    const seen: Array<Record<string, string | null>> = [];
    const s = await startTestGrpcServer(CatalogService, {
      getProduct(req, ctx) {
        seen.push({ caller: ctx.requestHeader.get("x-caller"), stamp: ctx.requestHeader.get("x-stamp"), bin: ctx.requestHeader.get("x-token-bin") });
        ctx.responseHeader.set("x-replica", "one");
        ctx.responseTrailer.set("x-done", "yes");
        return { product: { id: req.id } };
      },
    });
    cleanup.push(s.close);
    // Like the tracing interceptor: writes to the call's metadata, and to the headers where there is none.
    const stamp: Interceptor = (next) => (req) => {
      const md = outgoingMetadata(req);
      if (md) setMetadataHeader(md, "x-stamp", "interceptor");
      else req.header.set("x-stamp", "interceptor");
      return next(req);
    };
    const client = createClient(CatalogService, transportFor([s.address], { interceptors: [stamp] }));
    let header: Headers | undefined;
    let trailer: Headers | undefined;
    await client.getProduct({ id: "p" }, { onHeader: (h) => (header = h), onTrailer: (t) => (trailer = t) });
    await client.getProduct({ id: "p" }, { headers: { "x-caller": "me", "x-stamp": "caller", "x-token-bin": Buffer.from([1, 2, 3]).toString("base64") } });
    expect(seen).toEqual([
      { caller: null, stamp: "interceptor", bin: null },
      { caller: "me", stamp: "interceptor", bin: Buffer.from([1, 2, 3]).toString("base64") },
    ]);
    expect(header?.get("x-replica")).toBe("one");
    expect(trailer?.get("x-done")).toBe("yes");
  });

  it("spreads load and sends ≤ 10 % of calls to a replica that is 50 ms slower", async () => {
    const fast1 = await catalogReplica("f1");
    const fast2 = await catalogReplica("f2");
    const slow = await catalogReplica("s", { delayMs: 50 });
    const client = createClient(CatalogService, transportFor([fast1.address, fast2.address, slow.address]));
    // 8 concurrent workers × 50 sequential calls: steady load like a real caller.
    await Promise.all(Array.from({ length: 8 }, async () => {
      for (let i = 0; i < 50; i++) await client.getProduct({ id: "p" });
    }));
    const total = fast1.calls + fast2.calls + slow.calls;
    expect(total).toBe(400);
    expect(slow.calls / total).toBeLessThanOrEqual(0.1);
    expect(fast1.calls).toBeGreaterThan(50);
    expect(fast2.calls).toBeGreaterThan(50);
  });

  it("ejects a replica that fails every call and readmits it once it recovers", async () => {
    let broken = true;
    const bad = await catalogReplica("bad", { fail: () => broken });
    const good1 = await catalogReplica("g1");
    const good2 = await catalogReplica("g2");
    const ejections: Array<[string, boolean]> = [];
    const t = transportFor([bad.address, good1.address, good2.address], {
      balancer: { baseEjectionMs: 2_000, consecutiveFailures: 5, onEjection: (k, e) => ejections.push([k, e]) },
    });
    const client = createClient(CatalogService, t);
    let failures = 0;
    // Call until the balancer ejects it (how soon P2C tries it again depends on its latency score).
    for (let i = 0; t.balancer.ejected().length === 0; i++) {
      try {
        await client.getProduct({ id: "p" });
      } catch (e) {
        expect(ConnectError.from(e).code).toBe(Code.Unavailable);
        failures++;
      }
      if (i > 20_000) throw new Error("never ejected");
    }
    // Five consecutive failures eject it; after that no call reaches it while ejected.
    expect(failures).toBe(5);
    expect(ejections).toEqual([[bad.address, true]]);
    expect(t.balancer.ejected()).toEqual([bad.address]);
    const callsAtEjection = bad.calls;
    for (let i = 0; i < 50; i++) await client.getProduct({ id: "p" });
    expect(bad.calls).toBe(callsAtEjection);

    broken = false;
    const callsBefore = bad.calls;
    // Once the ejection expires a single probe readmits it.
    for (let i = 0; t.balancer.ejected().length > 0; i++) {
      await client.getProduct({ id: "p" });
      if (i > 10_000) throw new Error("never readmitted");
    }
    expect(ejections.at(-1)).toEqual([bad.address, false]);
    expect(bad.calls).toBe(callsBefore + 1);
  });

  it("calls a plain grpc-js server built from proto files with proto-loader", async () => {
    const def = loadSync("catalog/v1/catalog.proto", { includeDirs: [join(__dirname, "../../proto")], longs: String, defaults: true });
    const pkg = loadPackageDefinition(def) as GrpcObject;
    const svc = ((pkg.catalog as GrpcObject).v1 as GrpcObject).CatalogService as ServiceClientConstructor;
    const server = new Server();
    server.addService(svc.service, {
      getProduct: (call: { request: { id: string } }, cb: (e: null, r: unknown) => void) =>
        cb(null, { product: { id: call.request.id, name: "plain", price: { currencyCode: "EUR", amountMinor: "1999" } } }),
    });
    const port = await new Promise<number>((res, rej) => server.bindAsync("127.0.0.1:0", ServerCredentials.createInsecure(), (e, p) => (e ? rej(e) : res(p))));
    cleanup.push(() => server.forceShutdown());
    const client = createClient(CatalogService, transportFor([`127.0.0.1:${port}`]));
    const res = await client.getProduct({ id: "x" });
    expect(res).toEqual(create(GetProductResponseSchema, { product: create(ProductSchema, { id: "x", name: "plain", price: { currencyCode: "EUR", amountMinor: 1999n } }) }));
  });
});
