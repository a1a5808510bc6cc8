import { sql } from "kysely";
import { migrate, type Database, type Migration } from "../../../mesh/db/index.js";
import { OUTBOX_MIGRATION_TABLE, outboxMigrations } from "../../../mesh/events/index.js";

/** History table of the payments service's own migrations. */
export const PAYMENTS_MIGRATION_TABLE = "payments_migrations";

/** The payments schema: payments, refunds, the ledger and the idempotency records. */
export const paymentsMigrations: Migration[] = [
  {
    id: "0001_payments_schema",
    async up(db) {
      await db.schema
        .createTable("payments")
        .addColumn("id", "text", (c) => c.primaryKey())
        .addColumn("order_id", "text", (c) => c.notNull())
        .addColumn("customer_id", "text", (c) => c.notNull())
        .addColumn("currency", "text", (c) => c.notNull())
        // Integer minor units (mesh/db conventions): exact on both dialects.
        .addColumn("amount_minor", "bigint", (c) => c.notNull())
        .addColumn("refunded_minor", "bigint", (c) => c.notNull())
        .addColumn("status", "text", (c) => c.notNull())
        .addColumn("decline_reason", "text")
        .addColumn("card_last4", "text", (c) => c.notNull())
        .addColumn("created_at", "bigint", (c) => c.notNull())
        .addColumn("updated_at", "bigint", (c) => c.notNull())
        .addCheckConstraint("payments_amounts", sql`amount_minor > 0 and refunded_minor >= 0 and refunded_minor <= amount_minor`)
        .execute();
      await db.schema.createIndex("payments_order").on("payments").column("order_id").execute();
      await db.schema
        .createTable("refunds")
        .addColumn("id", "text", (c) => c.primaryKey())
        .addColumn("payment_id", "text", (c) => c.notNull().references("payments.id"))
        .addColumn("amount_minor", "bigint", (c) => c.notNull().check(sql`amount_minor > 0`))
        .addColumn("reason", "text", (c) => c.notNull())
        .addColumn("created_at", "bigint", (c) => c.notNull())
        .execute();
      await db.schema
        .createTable("ledger_entries")
        .addColumn("id", "text", (c) => c.primaryKey())
        // Entries of one ledger transaction share txn_id and sum to zero.
        .addColumn("txn_id", "text", (c) => c.notNull())
        .addColumn("payment_id", "text", (c) => c.notNull().references("payments.id"))
        .addColumn("account", "text", (c) => c.notNull().check(sql`account in ('customer', 'holds', 'merchant')`))
        .addColumn("currency", "text", (c) => c.notNull())
        // Signed: negative leaves the account, positive enters it.
        .addColumn("amount_minor", "bigint", (c) => c.notNull())
        .addColumn("created_at", "bigint", (c) => c.notNull())
        .execute();
      await db.schema.createIndex("ledger_entries_payment").on("ledger_entries").column("payment_id").execute();
      await db.schema.createIndex("ledger_entries_txn").on("ledger_entries").column("txn_id").execute();
      await db.schema
        .createTable("payment_operations")
        .addColumn("operation", "text", (c) => c.notNull())
        .addColumn("idempotency_key", "text", (c) => c.notNull())
        .addColumn("request_hash", "text", (c) => c.notNull())
        // JSON of the domain's OperationResult: replayed as is on a repeat.
        .addColumn("result", "text", (c) => c.notNull())
        .addColumn("created_at", "bigint", (c) => c.notNull())
        .addPrimaryKeyConstraint("payment_operations_pk", ["operation", "idempotency_key"])
        .execute();
    },
  },
];

/** Applies the outbox's and the payments service's migrations. */
export async function migratePayments(database: Database): Promise<void> {
  await migrate(database, outboxMigrations, { table: OUTBOX_MIGRATION_TABLE });
  await migrate(database, paymentsMigrations, { table: PAYMENTS_MIGRATION_TABLE });
}
