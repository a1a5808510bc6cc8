import { sql } from "kysely";
import { migrate, type Database, type Migration } from "../../../mesh/db/index.js";
import { inboxMigrations, INBOX_MIGRATION_TABLE, outboxMigrations, OUTBOX_MIGRATION_TABLE } from "../../../mesh/events/index.js";

/** History table of the orders schema. */
export const ORDERS_MIGRATION_TABLE = "orders_migrations";

/**
 * The orders schema. `orders` holds each order with its saga (phase, steps as JSON, lease owner and
 * expiry); the unique (customer_id, idempotency_key) makes CreateOrder idempotent under concurrency.
 * `order_payments` links every payment ever made for an order, so none escapes settlement.
 */
export const ordersMigrations: Migration[] = [
  {
    id: "0001_orders",
    async up(db) {
      await db.schema
        .createTable("orders")
        .addColumn("id", "text", (c) => c.primaryKey())
        .addColumn("customer_id", "text", (c) => c.notNull())
        .addColumn("idempotency_key", "text", (c) => c.notNull())
        .addColumn("request_hash", "text", (c) => c.notNull())
        .addColumn("currency_code", "text", (c) => c.notNull())
        // JSON array of lines: they are read and written with their order, never queried alone.
        .addColumn("items", "text", (c) => c.notNull())
        .addColumn("total_minor", "bigint", (c) => c.notNull())
        .addColumn("status", "text", (c) => c.notNull())
        .addColumn("failure", "text")
        .addColumn("cancel_reason", "text", (c) => c.notNull().defaultTo(""))
        // Written only by CancelOrder, never by the saga owner, so neither overwrites the other.
        .addColumn("cancel_requested", "text")
        .addColumn("payment_id", "text", (c) => c.notNull().defaultTo(""))
        .addColumn("reservation_id", "text", (c) => c.notNull().defaultTo(""))
        .addColumn("saga_phase", "text", (c) => c.notNull())
        .addColumn("saga", "text", (c) => c.notNull())
        .addColumn("saga_owner", "text")
        .addColumn("saga_lease_until", "bigint", (c) => c.notNull().defaultTo(0))
        .addColumn("traceparent", "text", (c) => c.notNull().defaultTo(""))
        .addColumn("version", "integer", (c) => c.notNull())
        .addColumn("created_at", "bigint", (c) => c.notNull())
        .addColumn("updated_at", "bigint", (c) => c.notNull())
        .addUniqueConstraint("orders_customer_idempotency_key", ["customer_id", "idempotency_key"])
        .execute();
      await db.schema.createIndex("orders_customer_created").on("orders").columns(["customer_id", "created_at", "id"]).execute();
      // Partial: finished sagas are the vast majority and never scanned.
      await db.schema.createIndex("orders_unfinished").on("orders").column("saga_lease_until").where(sql.ref("saga_phase"), "<>", "finished").execute();
      await db.schema
        .createTable("order_payments")
        .addColumn("order_id", "text", (c) => c.notNull().references("orders.id"))
        .addColumn("payment_id", "text", (c) => c.notNull())
        .addColumn("linked_at", "bigint", (c) => c.notNull())
        .addColumn("settled_at", "bigint")
        .addPrimaryKeyConstraint("order_payments_pk", ["order_id", "payment_id"])
        .execute();
      await db.schema.createIndex("order_payments_unsettled").on("order_payments").column("order_id").where(sql.ref("settled_at"), "is", null).execute();
    },
  },
];

/** Applies the outbox, inbox (payments events) and orders migrations. */
export async function migrateOrders(database: Database): Promise<void> {
  await migrate(database, outboxMigrations, { table: OUTBOX_MIGRATION_TABLE });
  await migrate(database, inboxMigrations, { table: INBOX_MIGRATION_TABLE });
  await migrate(database, ordersMigrations, { table: ORDERS_MIGRATION_TABLE });
}
