// Shared by this folder's tests and the relay crash fixture; not part of the public API.
import { create } from "@bufbuild/protobuf";
import { sql, type Transaction } from "kysely";
import { connect, type NatsConnection } from "nats";
import { OrderPlacedSchema } from "../../gen/orders/v1/events_pb.js";
import { migrate, openDatabase, type Database, type Dialect } from "../db/index.js";
import { createScratchDatabase } from "../db/testing.js";
import { inboxMigrations, INBOX_MIGRATION_TABLE, on } from "./consumer.js";
import { enqueueEvent, outboxMigrations, OUTBOX_MIGRATION_TABLE } from "./outbox.js";

/** A migrated scratch database with the outbox, the inbox and two test tables. */
export interface TestDb {
  readonly database: Database;
  readonly url: string;
  /** Closes and drops it. */
  dispose(): Promise<void>;
}

export async function openTestDb(dialect: Dialect): Promise<TestDb> {
  const scratch = await createScratchDatabase(dialect);
  const database = await openDatabase(scratch.url);
  await migrate(database, outboxMigrations, { table: OUTBOX_MIGRATION_TABLE });
  await migrate(database, inboxMigrations, { table: INBOX_MIGRATION_TABLE });
  // The producer's state and the consumer's effect. No unique key on effects: a duplicate effect
  // must show up as a second row, not as an error.
  await sql`create table orders (id text primary key)`.execute(database.db);
  await sql`create table effects (order_id text not null, event_id text not null)`.execute(database.db);
  return {
    database,
    url: scratch.url,
    async dispose() {
      await database.close();
      await scratch.drop();
    },
  };
}

/** A client that keeps reconnecting quickly, as a service's would. */
export function connectNats(url: string): Promise<NatsConnection> {
  // 100 ms between attempts: tests restart the broker and want to see it back at once.
  return connect({ servers: url, maxReconnectAttempts: -1, reconnectTimeWait: 100, reconnectJitter: 0 });
}

/** The producer's state change: an order row plus its OrderPlaced event, in one transaction. */
export async function placeOrder(trx: Transaction<any>, orderId: string, subject: string, extra: { traceparent?: string; deadline?: number } = {}): Promise<string> {
  await trx.insertInto("orders").values({ id: orderId }).execute();
  const { id } = await enqueueEvent(trx, {
    schema: OrderPlacedSchema,
    message: create(OrderPlacedSchema, { orderId, customerId: "c-1" }),
    producer: "orders-test",
    aggregateId: orderId,
    subject,
    traceContext: extra.traceparent ? { traceparent: extra.traceparent } : {},
    deadline: extra.deadline,
  });
  return id;
}

/** The consumer's effect: one `effects` row per handled OrderPlaced. */
export const recordEffect = on(OrderPlacedSchema, async (p, env, trx) => {
  await trx.insertInto("effects").values({ order_id: p.orderId, event_id: env.id }).execute();
});

/** Rows in `effects`, and how many distinct orders they cover. */
export async function countEffects(database: Database): Promise<{ rows: number; orders: number }> {
  const r = await database.db
    .selectFrom("effects")
    .select((eb) => [eb.fn.countAll().as("rows"), eb.fn.count("order_id").distinct().as("orders")])
    .executeTakeFirstOrThrow();
  return { rows: Number(r.rows), orders: Number(r.orders) };
}
