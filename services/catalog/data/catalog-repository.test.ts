import { migrate, openDatabase, type Database } from "../../../mesh/db/index.js";
import { createScratchDatabase, DIALECTS, type ScratchDatabase } from "../../../mesh/db/testing.js";
import { CATALOG_MIGRATION_TABLE, catalogMigrations } from "./migrations.js";
import { SqlCatalogRepository } from "./catalog-repository.js";
import { SEED_CATEGORIES, SEED_PRODUCTS } from "./seed.js";

describe.each(DIALECTS)("catalog repository on %s", (dialect) => {
  let scratch: ScratchDatabase;
  let database: Database;
  let repo: SqlCatalogRepository;

  beforeAll(async () => {
    scratch = await createScratchDatabase(dialect);
    database = await openDatabase(scratch.url);
    await migrate(database, catalogMigrations, { table: CATALOG_MIGRATION_TABLE });
    // A second run is a no-op: the seed is applied once.
    await migrate(database, catalogMigrations, { table: CATALOG_MIGRATION_TABLE });
    repo = new SqlCatalogRepository(database);
  });
  afterAll(async () => {
    await database?.close();
    await scratch?.drop();
  });

  const activeCount = SEED_PRODUCTS.filter((p) => p[6]).length;

  it("seeds the deterministic products and categories once", async () => {
    const all = await repo.listProducts({ limit: 1_000 });
    expect(all).toHaveLength(activeCount);
    expect(await repo.listCategories({ limit: 100 })).toHaveLength(SEED_CATEGORIES.length);
    const knife = await repo.getProduct("prod-001");
    expect(knife).toEqual({
      id: "prod-001",
      sku: "KIT-001",
      name: "Chef's Knife 20 cm",
      description: expect.any(String),
      categoryId: "kitchen",
      price: { currency: "EUR", amountMinor: 5900 },
      active: true,
    });
    expect((await repo.getProduct("prod-040"))?.active).toBe(false);
    expect(await repo.getProduct("prod-999")).toBeUndefined();
  });

  it("orders by name in byte order and continues strictly after a cursor", async () => {
    const all = await repo.listProducts({ limit: 1_000 });
    const names = all.map((p) => p.name);
    expect(names).toEqual([...names].sort((a, b) => (Buffer.from(a) < Buffer.from(b) ? -1 : 1)));
    const firstTen = await repo.listProducts({ limit: 10 });
    const rest = await repo.listProducts({ limit: 1_000, after: { name: firstTen[9].name, id: firstTen[9].id } });
    expect([...firstTen, ...rest].map((p) => p.id)).toEqual(all.map((p) => p.id));
  });

  it("filters by category and hides inactive products", async () => {
    const kitchen = await repo.listProducts({ categoryId: "kitchen", limit: 100 });
    expect(kitchen.map((p) => p.id).sort()).toEqual(["prod-001", "prod-002", "prod-003", "prod-004", "prod-005", "prod-006", "prod-007"]);
    expect(await repo.listProducts({ categoryId: "nope", limit: 100 })).toEqual([]);
  });

  it("searches name, description and SKU case-insensitively, name hits first", async () => {
    const steel = await repo.searchProducts({ terms: ["steel"], offset: 0, limit: 100 });
    expect(steel[0].id).toBe("prod-006"); // "Stainless Steel Kettle": the only name hit
    // Then the description hits by name; the same order on both dialects.
    expect(steel.map((p) => p.id)).toEqual(["prod-006", "prod-001", "prod-017", "prod-003", "prod-022", "prod-010", "prod-012", "prod-013"]);
    expect((await repo.searchProducts({ terms: ["kit-003"], offset: 0, limit: 10 })).map((p) => p.id)).toEqual(["prod-003"]);
    // Every term must match somewhere.
    expect((await repo.searchProducts({ terms: ["garden", "birds"], offset: 0, limit: 10 })).map((p) => p.id)).toEqual(["prod-036"]);
    expect((await repo.searchProducts({ terms: ["steel"], categoryId: "garden", offset: 0, limit: 100 })).every((p) => p.categoryId === "garden")).toBe(true);
    // Inactive products never match.
    expect(await repo.searchProducts({ terms: ["discontinued"], offset: 0, limit: 10 })).toEqual([]);
  });

  it("treats LIKE wildcards in queries literally", async () => {
    expect(await repo.searchProducts({ terms: ["%"], offset: 0, limit: 10 })).toEqual([]);
    expect(await repo.searchProducts({ terms: ["_"], offset: 0, limit: 10 })).toEqual([]);
    expect(await repo.searchProducts({ terms: ["\\"], offset: 0, limit: 10 })).toEqual([]);
    expect((await repo.searchProducts({ terms: ["3.5"], offset: 0, limit: 10 })).map((p) => p.id)).toEqual(["prod-031"]);
  });

  it("pages search results by offset without overlap", async () => {
    const all = await repo.searchProducts({ terms: ["e"], offset: 0, limit: 1_000 });
    const first = await repo.searchProducts({ terms: ["e"], offset: 0, limit: 10 });
    const second = await repo.searchProducts({ terms: ["e"], offset: 10, limit: 10 });
    expect([...first, ...second].map((p) => p.id)).toEqual(all.slice(0, 20).map((p) => p.id));
  });

  it("orders categories by display name", async () => {
    const cats = await repo.listCategories({ limit: 100 });
    expect(cats.map((c) => c.displayName)).toEqual(SEED_CATEGORIES.map((c) => c.displayName).sort());
    const after = await repo.listCategories({ limit: 100, after: { name: cats[1].displayName, id: cats[1].id } });
    expect(after.map((c) => c.id)).toEqual(cats.slice(2).map((c) => c.id));
  });
});
