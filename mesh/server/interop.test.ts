import { Code, ConnectError, createClient } from "@connectrpc/connect";
import { createGrpcTransport, Http2SessionManager } from "@connectrpc/connect-node";
import { credentials, loadPackageDefinition, type Client, type GrpcObject, type ServiceClientConstructor, type ServiceError } from "@grpc/grpc-js";
import { loadSync } from "@grpc/proto-loader";
import { join } from "node:path";
import { CatalogService } from "../../gen/catalog/v1/catalog_pb.js";
import { Health } from "../../gen/grpc/health/v1/health_pb.js";
import { service, ServingStatus, type MeshServer } from "./index.js";
import { TestResources } from "./test-support.js";

const res = new TestResources();
afterEach(() => res.closeAll());

const CATALOG = "catalog.v1.CatalogService";

function catalogServer(): Promise<MeshServer> {
  return res.server({
    services: [
      service(CatalogService, {
        getProduct(req) {
          if (req.id === "missing") throw new ConnectError(`product ${req.id} not found`, Code.NotFound);
          return { product: { id: req.id, name: "Kettle", price: { currencyCode: "EUR", amountMinor: 1999n } } };
        },
      }),
    ],
  });
}

/** A grpc-js client class for `pkg.Service` loaded by proto-loader from .proto sources. */
function protoLoaderClient(root: string, file: string, path: string[]): ServiceClientConstructor {
  const def = loadSync(file, { includeDirs: [join(__dirname, root)], longs: String, enums: String, defaults: true });
  let node: unknown = loadPackageDefinition(def);
  for (const p of path) node = (node as GrpcObject)[p];
  return node as ServiceClientConstructor;
}

function promisified<Res>(client: Client, name: string, req: unknown): Promise<Res> {
  return new Promise((resolve, reject) =>
    (client as unknown as Record<string, (r: unknown, cb: (e: ServiceError | null, v: Res) => void) => void>)[name](req, (e, v) => (e ? reject(e) : resolve(v))),
  );
}

describe("a plain grpc-js client built with proto-loader", () => {
  it("checks health (vendor/proto) and calls a shop service (proto/)", async () => {
    const server = await catalogServer();
    const HealthClient = protoLoaderClient("../../vendor/proto", "grpc/health/v1/health.proto", ["grpc", "health", "v1", "Health"]);
    const health = new HealthClient(`127.0.0.1:${server.port}`, credentials.createInsecure());
    res.add(() => health.close());
    expect(await promisified(health, "Check", { service: CATALOG })).toEqual({ status: "SERVING" });
    await expect(promisified(health, "Check", { service: "nope" })).rejects.toMatchObject({ code: Code.NotFound });

    const CatalogClient = protoLoaderClient("../../proto", "catalog/v1/catalog.proto", ["catalog", "v1", "CatalogService"]);
    const catalog = new CatalogClient(`127.0.0.1:${server.port}`, credentials.createInsecure());
    res.add(() => catalog.close());
    const got = await promisified<{ product: { id: string; price: { currencyCode: string; amountMinor: string } } }>(catalog, "GetProduct", { id: "p1" });
    expect(got.product).toMatchObject({ id: "p1", price: { currencyCode: "EUR", amountMinor: "1999" } });
    await expect(promisified(catalog, "GetProduct", { id: "missing" })).rejects.toMatchObject({ code: Code.NotFound });
  });
});

describe("a connect-node gRPC client", () => {
  it("calls unary methods and follows a Watch stream", async () => {
    const server = await catalogServer();
    const baseUrl = `http://127.0.0.1:${server.port}`;
    const sessionManager = new Http2SessionManager(baseUrl);
    res.add(() => sessionManager.abort());
    const transport = createGrpcTransport({ baseUrl, sessionManager });

    const catalog = createClient(CatalogService, transport);
    const got = await catalog.getProduct({ id: "p1" });
    expect(got.product?.price?.amountMinor).toBe(1999n);
    await expect(catalog.getProduct({ id: "missing" })).rejects.toMatchObject({ code: Code.NotFound });

    const health = createClient(Health, transport);
    expect((await health.check({ service: "" })).status).toBe(ServingStatus.SERVING);
    await expect(health.check({ service: "nope" })).rejects.toMatchObject({ code: Code.NotFound });

    const ctl = new AbortController();
    const seen: ServingStatus[] = [];
    const watching = (async () => {
      for await (const m of health.watch({ service: CATALOG }, { signal: ctl.signal })) {
        seen.push(m.status);
        if (seen.length === 1) server.health.setStatus(CATALOG, ServingStatus.NOT_SERVING);
        if (seen.length === 2) ctl.abort();
      }
    })();
    await expect(watching).rejects.toMatchObject({ code: Code.Canceled });
    expect(seen).toEqual([ServingStatus.SERVING, ServingStatus.NOT_SERVING]);
  });
});
