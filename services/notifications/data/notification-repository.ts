import type { Kysely, Transaction } from "kysely";
import type { Database } from "../../../mesh/db/index.js";
import type { Notification, NotificationKind } from "../domain/notification.js";
import type { NotificationCursor, NotificationRepository } from "../domain/repository.js";

interface NotificationsTable {
  id: string;
  customer_id: string;
  kind: string;
  title: string;
  body: string;
  order_id: string;
  source_event_id: string;
  created_at: number;
}

/** The notifications table, for Kysely. */
export interface NotificationsTables {
  notifications: NotificationsTable;
}

/** {@link NotificationRepository} on Kysely; the same SQL on SQLite and PostgreSQL. */
export class SqlNotificationRepository implements NotificationRepository {
  private readonly db: Kysely<NotificationsTables>;

  constructor(database: Database) {
    this.db = database.db as Kysely<NotificationsTables>;
  }

  async listByCustomer(customerId: string, after: NotificationCursor | undefined, limit: number): Promise<Notification[]> {
    let q = this.db.selectFrom("notifications").selectAll().where("customer_id", "=", customerId);
    if (after) {
      q = q.where((eb) => eb.or([eb("created_at", "<", after.createdAt), eb.and([eb("created_at", "=", after.createdAt), eb("id", "<", after.id)])]));
    }
    return (await q.orderBy("created_at", "desc").orderBy("id", "desc").limit(limit).execute()).map(toNotification);
  }

  async listCreatedSince(customerId: string, since: number, limit: number): Promise<Notification[]> {
    const rows = await this.db
      .selectFrom("notifications")
      .selectAll()
      .where("customer_id", "=", customerId)
      .where("created_at", ">=", since)
      .orderBy("created_at")
      .orderBy("id")
      .limit(limit)
      .execute();
    return rows.map(toNotification);
  }
}

/**
 * Stores a notification inside the caller's (inbox) transaction; a second one for the same source
 * event is dropped. True when it was stored.
 */
export async function insertNotificationIn(trx: Transaction<any>, n: Notification): Promise<boolean> {
  const r = await (trx as Transaction<NotificationsTables>)
    .insertInto("notifications")
    .values({
      id: n.id,
      customer_id: n.customerId,
      kind: n.kind,
      title: n.title,
      body: n.body,
      order_id: n.orderId,
      source_event_id: n.sourceEventId,
      created_at: n.createdAt,
    })
    .onConflict((oc) => oc.column("source_event_id").doNothing())
    .executeTakeFirst();
  return Number(r.numInsertedOrUpdatedRows ?? 0n) === 1;
}

function toNotification(row: NotificationsTable): Notification {
  return {
    id: row.id,
    customerId: row.customer_id,
    kind: row.kind as NotificationKind,
    title: row.title,
    body: row.body,
    orderId: row.order_id,
    sourceEventId: row.source_event_id,
    createdAt: Number(row.created_at),
  };
}
