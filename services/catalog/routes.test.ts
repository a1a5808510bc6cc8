import { Code, ConnectError, createClient, type Client } from "@connectrpc/connect";
import { CatalogService } from "../../gen/catalog/v1/catalog_pb.js";
import { ErrorDetailSchema } from "../../gen/meshwork/v1/errors_pb.js";
import { createMeshTransport, staticEndpoints, type MeshTransport } from "../../mesh/client/index.js";
import { migrate, openDatabase, type Database } from "../../mesh/db/index.js";
import { createScratchDatabase, type ScratchDatabase } from "../../mesh/db/testing.js";
import type { MeshServer } from "../../mesh/server/index.js";
import { CATALOG_MIGRATION_TABLE, catalogMigrations } from "./data/migrations.js";
import { build } from "./server.js";

/** The code and ErrorDetail reason a call failed with. */
async function failure(p: Promise<unknown>): Promise<{ code: Code; reason?: string }> {
  try {
    await p;
  } catch (err) {
    const ce = ConnectError.from(err);
    return { code: ce.code, reason: ce.findDetails(ErrorDetailSchema)[0]?.reason };
  }
  throw new Error("call succeeded; expected an error");
}

describe("catalog over gRPC", () => {
  let scratch: ScratchDatabase;
  let database: Database;
  let server: MeshServer;
  let transport: MeshTransport;
  let client: Client<typeof CatalogService>;

  beforeAll(async () => {
    scratch = await createScratchDatabase("sqlite");
    database = await openDatabase(scratch.url);
    await migrate(database, catalogMigrations, { table: CATALOG_MIGRATION_TABLE });
    server = build({ database });
    const port = await server.listen(0, "127.0.0.1");
    transport = createMeshTransport({ endpoints: staticEndpoints(`127.0.0.1:${port}`), serviceName: "catalog" });
    client = createClient(CatalogService, transport);
  });
  afterAll(async () => {
    transport?.close();
    server?.forceShutdown();
    await database?.close();
    await scratch?.drop();
  });

  it("returns a product with its price in minor units, inactive ones too", async () => {
    const { product } = await client.getProduct({ id: "prod-001" });
    expect(product).toMatchObject({ id: "prod-001", sku: "KIT-001", category: "kitchen", active: true });
    expect(product?.price).toMatchObject({ currencyCode: "EUR", amountMinor: 5900n });
    expect((await client.getProduct({ id: "prod-008" })).product?.active).toBe(false);
  });

  it("answers NotFound with PRODUCT_NOT_FOUND and InvalidArgument for an empty id", async () => {
    expect(await failure(client.getProduct({ id: "prod-999" }))).toEqual({ code: Code.NotFound, reason: "ERROR_REASON_PRODUCT_NOT_FOUND" });
    expect((await failure(client.getProduct({ id: "" }))).code).toBe(Code.InvalidArgument);
  });

  it("pages ListProducts with opaque tokens: default 20, capped at 100", async () => {
    const first = await client.listProducts({});
    expect(first.products).toHaveLength(20);
    const second = await client.listProducts({ pageToken: first.nextPageToken });
    expect(second.products).toHaveLength(18);
    expect(second.nextPageToken).toBe("");
    expect(new Set([...first.products, ...second.products].map((p) => p.id)).size).toBe(38);
    const big = await client.listProducts({ pageSize: 10_000 });
    expect(big.products).toHaveLength(38);
    expect(big.nextPageToken).toBe("");
  });

  it("filters ListProducts by category", async () => {
    const res = await client.listProducts({ category: "audio", pageSize: 3 });
    expect(res.products.every((p) => p.category === "audio")).toBe(true);
    const rest = await client.listProducts({ category: "audio", pageSize: 100, pageToken: res.nextPageToken });
    expect(res.products.length + rest.products.length).toBe(8);
  });

  it("rejects a negative page size and foreign or malformed tokens", async () => {
    expect((await failure(client.listProducts({ pageSize: -1 }))).code).toBe(Code.InvalidArgument);
    expect((await failure(client.listCategories({ pageSize: -5 }))).code).toBe(Code.InvalidArgument);
    const kitchen = await client.listProducts({ category: "kitchen", pageSize: 2 });
    const invalidToken = { code: Code.InvalidArgument, reason: "ERROR_REASON_INVALID_PAGE_TOKEN" };
    expect(await failure(client.listProducts({ category: "garden", pageToken: kitchen.nextPageToken }))).toEqual(invalidToken);
    expect(await failure(client.listProducts({ pageToken: "garbage" }))).toEqual(invalidToken);
    expect(await failure(client.searchProducts({ query: "steel", pageToken: kitchen.nextPageToken }))).toEqual(invalidToken);
  });

  it("searches case-insensitively with best match first and pages the results", async () => {
    const res = await client.searchProducts({ query: "STEEL", pageSize: 3 });
    expect(res.products[0].id).toBe("prod-006");
    const next = await client.searchProducts({ query: "steel", pageSize: 100, pageToken: res.nextPageToken });
    expect(res.products.length + next.products.length).toBe(8);
    expect((await client.searchProducts({ query: "headphones", category: "books" })).products.map((p) => p.id)).toEqual(["prod-039"]);
  });

  it("rejects empty and over-long queries with INVALID_QUERY", async () => {
    const invalidQuery = { code: Code.InvalidArgument, reason: "ERROR_REASON_INVALID_QUERY" };
    expect(await failure(client.searchProducts({ query: "" }))).toEqual(invalidQuery);
    expect(await failure(client.searchProducts({ query: "   " }))).toEqual(invalidQuery);
    expect(await failure(client.searchProducts({ query: "a".repeat(201) }))).toEqual(invalidQuery);
  });

  it("lists categories by display name", async () => {
    const res = await client.listCategories({});
    expect(res.categories.map((c) => c.id)).toEqual(["audio", "books", "garden", "kitchen", "office"]);
    const paged = await client.listCategories({ pageSize: 2 });
    const rest = await client.listCategories({ pageSize: 2, pageToken: paged.nextPageToken });
    expect([...paged.categories, ...rest.categories].map((c) => c.id)).toEqual(["audio", "books", "garden", "kitchen"]);
  });
});
