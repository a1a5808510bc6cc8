import { sql } from "kysely";
import { migrate, type Database, type Migration } from "../../../mesh/db/index.js";
import { OUTBOX_MIGRATION_TABLE, outboxMigrations } from "../../../mesh/events/index.js";
import { SEED_STOCK } from "./seed.js";

/** History table of the inventory's own migrations. */
export const INVENTORY_MIGRATION_TABLE = "inventory_migrations";

/** The inventory schema and its seed stock. */
export const inventoryMigrations: Migration[] = [
  {
    id: "0001_inventory_schema",
    async up(db) {
      await db.schema
        .createTable("stock")
        .addColumn("product_id", "text", (c) => c.primaryKey())
        .addColumn("received", "integer", (c) => c.notNull())
        .addColumn("available", "integer", (c) => c.notNull())
        .addColumn("reserved", "integer", (c) => c.notNull())
        .addColumn("sold", "integer", (c) => c.notNull())
        // 0/1: a StockLow event announced the current dip below the threshold.
        .addColumn("low_announced", "integer", (c) => c.notNull().defaultTo(0))
        .addColumn("updated_at", "bigint", (c) => c.notNull())
        // The conservation invariant, enforced by the database on every write: units only move.
        .addCheckConstraint("stock_conserved", sql`available + reserved + sold = received`)
        .addCheckConstraint("stock_non_negative", sql`available >= 0 and reserved >= 0 and sold >= 0`)
        .execute();
      await db.schema
        .createTable("reservations")
        .addColumn("id", "text", (c) => c.primaryKey())
        .addColumn("order_id", "text", (c) => c.notNull())
        .addColumn("status", "text", (c) => c.notNull().check(sql`status in ('RESERVED', 'COMMITTED', 'RELEASED', 'EXPIRED')`))
        .addColumn("expire_at", "bigint", (c) => c.notNull())
        .addColumn("created_at", "bigint", (c) => c.notNull())
        .addColumn("updated_at", "bigint", (c) => c.notNull())
        .addColumn("release_reason", "text")
        .execute();
      // The sweeper's query: RESERVED rows by expiry.
      await db.schema.createIndex("reservations_status_expire").on("reservations").columns(["status", "expire_at"]).execute();
      await db.schema
        .createTable("reservation_items")
        .addColumn("reservation_id", "text", (c) => c.notNull().references("reservations.id"))
        .addColumn("product_id", "text", (c) => c.notNull())
        .addColumn("quantity", "integer", (c) => c.notNull().check(sql`quantity >= 1`))
        .addPrimaryKeyConstraint("reservation_items_pk", ["reservation_id", "product_id"])
        .execute();
    },
  },
  {
    id: "0002_inventory_seed",
    async up(db) {
      const now = Date.now();
      await db
        .insertInto("stock")
        .values(SEED_STOCK.map((s) => ({ product_id: s.productId, received: s.units, available: s.units, reserved: 0, sold: 0, low_announced: 0, updated_at: now })))
        .execute();
    },
  },
];

/** Applies the outbox's and the inventory's migrations. */
export async function migrateInventory(database: Database): Promise<void> {
  await migrate(database, outboxMigrations, { table: OUTBOX_MIGRATION_TABLE });
  await migrate(database, inventoryMigrations, { table: INVENTORY_MIGRATION_TABLE });
}
