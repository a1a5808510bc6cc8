import { migrate, type Database, type Migration } from "../../../mesh/db/index.js";
import { inboxMigrations, INBOX_MIGRATION_TABLE } from "../../../mesh/events/index.js";

/** History table of the notifications schema. */
export const NOTIFICATIONS_MIGRATION_TABLE = "notifications_migrations";

/** The notifications schema: one row per notification, unique per source event. */
export const notificationsMigrations: Migration[] = [
  {
    id: "0001_notifications",
    async up(db) {
      await db.schema
        .createTable("notifications")
        .addColumn("id", "text", (c) => c.primaryKey())
        .addColumn("customer_id", "text", (c) => c.notNull())
        .addColumn("kind", "text", (c) => c.notNull())
        .addColumn("title", "text", (c) => c.notNull())
        .addColumn("body", "text", (c) => c.notNull())
        .addColumn("order_id", "text", (c) => c.notNull().defaultTo(""))
        // The contract's promise "at most one notification per event", enforced by the database
        // even if an event bypassed the inbox (a redrive under another consumer name).
        .addColumn("source_event_id", "text", (c) => c.notNull().unique())
        .addColumn("created_at", "bigint", (c) => c.notNull())
        .execute();
      await db.schema.createIndex("notifications_customer_created").on("notifications").columns(["customer_id", "created_at", "id"]).execute();
    },
  },
];

/** Applies the inbox and notifications migrations. */
export async function migrateNotifications(database: Database): Promise<void> {
  await migrate(database, inboxMigrations, { table: INBOX_MIGRATION_TABLE });
  await migrate(database, notificationsMigrations, { table: NOTIFICATIONS_MIGRATION_TABLE });
}
