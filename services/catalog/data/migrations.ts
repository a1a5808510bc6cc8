import { sql } from "kysely";
import type { Migration } from "../../../mesh/db/index.js";
import { SEED_CATEGORIES, SEED_CURRENCY, SEED_PRODUCTS } from "./seed.js";

/** History table of the catalog's own migrations. */
export const CATALOG_MIGRATION_TABLE = "catalog_migrations";

/** The catalog schema and its seed data; apply with `migrate(database, catalogMigrations, { table: CATALOG_MIGRATION_TABLE })`. */
export const catalogMigrations: Migration[] = [
  {
    id: "0001_catalog_schema",
    async up(db) {
      await db.schema
        .createTable("categories")
        .addColumn("id", "text", (c) => c.primaryKey())
        .addColumn("display_name", "text", (c) => c.notNull())
        .execute();
      await db.schema
        .createTable("products")
        .addColumn("id", "text", (c) => c.primaryKey())
        .addColumn("sku", "text", (c) => c.notNull().unique())
        .addColumn("name", "text", (c) => c.notNull())
        .addColumn("description", "text", (c) => c.notNull())
        .addColumn("category_id", "text", (c) => c.notNull().references("categories.id"))
        // Integer minor units (mesh/db conventions): exact on both dialects.
        .addColumn("price_minor", "bigint", (c) => c.notNull().check(sqlNonNegative("price_minor")))
        .addColumn("currency", "text", (c) => c.notNull())
        // 0/1: SQLite has no boolean type.
        .addColumn("active", "integer", (c) => c.notNull())
        .execute();
      await db.schema.createIndex("products_category_name").on("products").columns(["category_id", "name", "id"]).execute();
      await db.schema.createIndex("products_name").on("products").columns(["name", "id"]).execute();
    },
  },
  {
    id: "0002_catalog_seed",
    async up(db) {
      await db.insertInto("categories").values(SEED_CATEGORIES.map((c) => ({ id: c.id, display_name: c.displayName }))).execute();
      await db
        .insertInto("products")
        .values(
          SEED_PRODUCTS.map(([id, sku, name, description, category, price, active]) => ({
            id,
            sku,
            name,
            description,
            category_id: category,
            price_minor: price,
            currency: SEED_CURRENCY,
            active: active ? 1 : 0,
          })),
        )
        .execute();
    },
  },
];

function sqlNonNegative(column: string) {
  return sql`${sql.ref(column)} >= 0`;
}
