import { create, type DescMessage, type MessageShape } from "@bufbuild/protobuf";
import { Code, ConnectError, createClient, type Client } from "@connectrpc/connect";
import { connect, type NatsConnection } from "nats";
import { MoneySchema } from "../../gen/common/v1/money_pb.js";
import { NotificationKind, NotificationService, type Notification } from "../../gen/notifications/v1/notifications_pb.js";
import { OrderCancelledSchema, OrderConfirmedSchema, OrderPlacedSchema } from "../../gen/orders/v1/events_pb.js";
import { OrderStatus } from "../../gen/orders/v1/orders_pb.js";
import { PaymentRefundedSchema } from "../../gen/payments/v1/events_pb.js";
import { ErrorDetailSchema } from "../../gen/meshwork/v1/errors_pb.js";
import { createMeshTransport, staticEndpoints, type MeshTransport } from "../../mesh/client/index.js";
import { migrate, openDatabase, transaction, type Database } from "../../mesh/db/index.js";
import { createScratchDatabase, DIALECTS, type ScratchDatabase } from "../../mesh/db/testing.js";
import { enqueueEvent, ensureStreams, OUTBOX_TABLE, outboxMigrations, OUTBOX_MIGRATION_TABLE, OutboxRelay, SHOP_STREAMS, type EventConsumer } from "../../mesh/events/index.js";
import { startNats, waitFor, type NatsServer } from "../../mesh/infra/index.js";
import type { MeshServer } from "../../mesh/server/index.js";
import { notificationConsumers, ORDERS_CONSUMER, PAYMENTS_CONSUMER } from "./consumers.js";
import { migrateNotifications } from "./data/migrations.js";
import { NotificationFeed } from "./domain/feed.js";
import { build } from "./server.js";

const eur = (minor: number) => create(MoneySchema, { currencyCode: "EUR", amountMinor: BigInt(minor) });

describe.each(DIALECTS)("notifications on %s", (dialect) => {
  let nats: NatsServer;
  let nc: NatsConnection;
  // The producer side: a database with an outbox and the real relay, as orders and payments have.
  let producerScratch: ScratchDatabase;
  let producerDb: Database;
  let relay: OutboxRelay;
  let failNextPublishAck = false;
  let scratch: ScratchDatabase;
  let database: Database;
  let feed: NotificationFeed;
  let consumers: EventConsumer[];
  let server: MeshServer;
  let transport: MeshTransport;
  let client: Client<typeof NotificationService>;

  beforeAll(async () => {
    nats = await startNats();
    nc = await connect({ servers: nats.url });
    await ensureStreams(await nc.jetstreamManager(), SHOP_STREAMS);
    producerScratch = await createScratchDatabase("sqlite");
    producerDb = await openDatabase(producerScratch.url);
    await migrate(producerDb, outboxMigrations, { table: OUTBOX_MIGRATION_TABLE });
    relay = new OutboxRelay({
      database: producerDb,
      nats: () => nc,
      // Short poll and backoff: tests wait for outcomes, not timers.
      pollIntervalMs: 50,
      backoff: { initialMs: 20, maxMs: 100 },
      // R6b: a crash between the publish ack and marking the rows sent publishes them again.
      afterPublish: () => {
        if (!failNextPublishAck) return;
        failNextPublishAck = false;
        throw new Error("relay crashed after the publish ack");
      },
    });
    relay.start();

    scratch = await createScratchDatabase(dialect);
    database = await openDatabase(scratch.url);
    await migrateNotifications(database);
    feed = new NotificationFeed();
    consumers = notificationConsumers({ nats: nc, database, feed });
    for (const c of consumers) await c.start();
    server = build({ database, feed });
    const port = await server.listen(0, "127.0.0.1");
    transport = createMeshTransport({ endpoints: staticEndpoints(`127.0.0.1:${port}`) });
    client = createClient(NotificationService, transport);
  });

  afterAll(async () => {
    transport?.close();
    server?.forceShutdown();
    for (const c of consumers ?? []) await c.stop();
    await relay?.stop();
    await nc?.close();
    await nats?.stop();
    await database?.close();
    await scratch?.drop();
    await producerDb?.close();
    await producerScratch?.drop();
  });

  async function produce<D extends DescMessage>(schema: D, message: MessageShape<D>, aggregateId: string): Promise<string> {
    const { id } = await transaction(producerDb, (trx) => enqueueEvent(trx, { schema, message, producer: "test", aggregateId }));
    relay.kick();
    return id;
  }

  async function list(customerId: string): Promise<Notification[]> {
    return (await client.listNotifications({ customerId, pageSize: 100 })).notifications;
  }

  /** Every message of both streams handled and acked by its consumer. */
  async function drained(): Promise<boolean> {
    const jsm = await nc.jetstreamManager();
    for (const [stream, durable] of [
      ["ORDERS", ORDERS_CONSUMER],
      ["PAYMENTS", PAYMENTS_CONSUMER],
    ]) {
      const info = await jsm.consumers.info(stream, durable);
      if (info.num_pending > 0 || info.num_ack_pending > 0) return false;
    }
    return (await relay.backlog()) === 0;
  }

  test("order and payment events become one notification each, even when redelivered", async () => {
    const c = `c-${dialect}-1`;
    await produce(OrderPlacedSchema, create(OrderPlacedSchema, { orderId: "o-1", customerId: c, total: eur(1999), items: [{ productId: "p-1", quantity: 1 }] }), "o-1");
    await produce(OrderConfirmedSchema, create(OrderConfirmedSchema, { orderId: "o-1", customerId: c, total: eur(1999), paymentId: "pay-1" }), "o-1");
    // The relay "crashes" after this one's publish ack: it is published again (JetStream drops the copy).
    failNextPublishAck = true;
    await produce(
      OrderCancelledSchema,
      create(OrderCancelledSchema, { orderId: "o-1", customerId: c, total: eur(1999), reason: "changed mind", previousStatus: OrderStatus.CONFIRMED, paymentId: "pay-1" }),
      "o-1",
    );
    const refundId = await produce(
      PaymentRefundedSchema,
      create(PaymentRefundedSchema, { paymentId: "pay-1", orderId: "o-1", customerId: c, refundId: "r-1", amount: eur(1999), totalRefunded: eur(1999), fullyRefunded: true }),
      "pay-1",
    );
    await waitFor(async () => (await list(c)).length === 4, { what: "four notifications" });

    // Redelivery past JetStream's dedup window (same envelope, new message id): the inbox drops it.
    const row = await producerDb.db.selectFrom(OUTBOX_TABLE).select(["subject", "payload"]).where("id", "=", refundId).executeTakeFirstOrThrow();
    await nc.jetstream().publish(row.subject as string, new Uint8Array(row.payload as Buffer), { msgID: `${refundId}-again` });
    await waitFor(drained, { what: "consumers drained" });
    expect(relay.stats.duplicates).toBeGreaterThanOrEqual(1);

    const got = await list(c);
    // Two streams are consumed concurrently, so only the set of kinds is fixed, not their order.
    expect(got.map((n) => n.kind).sort()).toEqual(
      [NotificationKind.ORDER_PLACED, NotificationKind.ORDER_CONFIRMED, NotificationKind.ORDER_CANCELLED, NotificationKind.PAYMENT_REFUNDED].sort(),
    );
    expect(new Set(got.map((n) => n.sourceEventId)).size).toBe(4);
    const confirmed = got.find((n) => n.kind === NotificationKind.ORDER_CONFIRMED)!;
    expect(confirmed).toMatchObject({ customerId: c, orderId: "o-1", title: "Order confirmed", body: "We received your payment of 19.99 EUR." });
    expect(got.find((n) => n.kind === NotificationKind.PAYMENT_REFUNDED)?.sourceEventId).toBe(refundId);
  });

  test("WatchNotifications sends new notifications live, not earlier ones", async () => {
    const c = `c-${dialect}-2`;
    await produce(OrderPlacedSchema, create(OrderPlacedSchema, { orderId: "o-old", customerId: c, total: eur(500) }), "o-old");
    await waitFor(async () => (await list(c)).length === 1, { what: "the earlier notification" });

    const abort = new AbortController();
    const received: Notification[] = [];
    const watching = (async () => {
      try {
        for await (const m of client.watchNotifications({ customerId: c }, { signal: abort.signal })) {
          received.push(m.notification!);
          abort.abort();
        }
      } catch (err) {
        if (ConnectError.from(err).code !== Code.Canceled) throw err;
      }
    })();
    await waitFor(() => feed.watchers(c) > 0, { what: "the watch open on the server" });
    await produce(OrderConfirmedSchema, create(OrderConfirmedSchema, { orderId: "o-new", customerId: c, total: eur(500) }), "o-new");
    await watching;
    expect(received).toHaveLength(1);
    expect(received[0]).toMatchObject({ customerId: c, orderId: "o-new", kind: NotificationKind.ORDER_CONFIRMED });
  });

  test("ListNotifications pages newest first and rejects bad arguments", async () => {
    const c = `c-${dialect}-3`;
    for (let i = 0; i < 5; i++) {
      await produce(OrderPlacedSchema, create(OrderPlacedSchema, { orderId: `o-${i}`, customerId: c, total: eur(100) }), `o-${i}`);
    }
    await waitFor(async () => (await list(c)).length === 5, { what: "five notifications" });
    const seen: string[] = [];
    let pageToken = "";
    do {
      const page = await client.listNotifications({ customerId: c, pageSize: 2, pageToken });
      seen.push(...page.notifications.map((n) => n.orderId));
      pageToken = page.nextPageToken;
    } while (pageToken);
    expect(seen).toEqual((await list(c)).map((n) => n.orderId));
    expect(new Set(seen).size).toBe(5);

    const first = await client.listNotifications({ customerId: c, pageSize: 2 });
    for (const [req, reason] of [
      [{ customerId: "someone-else", pageToken: first.nextPageToken }, "ERROR_REASON_INVALID_PAGE_TOKEN"],
      [{ customerId: c, pageToken: "garbage" }, "ERROR_REASON_INVALID_PAGE_TOKEN"],
      [{ customerId: c, pageSize: -1 }, undefined],
      [{ customerId: "" }, undefined],
    ] as const) {
      const err = await client.listNotifications(req).then(
        () => undefined,
        (e: unknown) => ConnectError.from(e),
      );
      expect(err?.code).toBe(Code.InvalidArgument);
      expect(err?.findDetails(ErrorDetailSchema)[0]?.reason).toBe(reason);
    }
  });
});
