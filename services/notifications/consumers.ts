import type { DescMessage, MessageShape } from "@bufbuild/protobuf";
import type { Transaction } from "kysely";
import type { NatsConnection } from "nats";
import { randomUUID } from "node:crypto";
import type { Money } from "../../gen/common/v1/money_pb.js";
import type { EventEnvelope } from "../../gen/meshwork/v1/event_pb.js";
import { OrderCancelledSchema, OrderConfirmedSchema, OrderFailedSchema, OrderPlacedSchema } from "../../gen/orders/v1/events_pb.js";
import { ErrorReason, OrderStatus } from "../../gen/orders/v1/orders_pb.js";
import { PaymentRefundedSchema } from "../../gen/payments/v1/events_pb.js";
import type { Database } from "../../mesh/db/index.js";
import { domainStream, EventConsumer, on, subjectFor, type EventHandler, type EventsLogger } from "../../mesh/events/index.js";
import { insertNotificationIn } from "./data/notification-repository.js";
import type { NotificationFeed } from "./domain/feed.js";
import { compose, type Amount, type CustomerEvent } from "./domain/notification.js";

/** Durable consumer names: one per stream (nats-server 2.9 takes one filter subject per consumer). */
export const ORDERS_CONSUMER = "notifications-orders";
export const PAYMENTS_CONSUMER = "notifications-payments";

/** Options for {@link notificationConsumers}. */
export interface NotificationConsumersOptions {
  nats: NatsConnection;
  database: Database;
  feed: NotificationFeed;
  logger?: EventsLogger;
  /** Deliveries before the DLQ; EventConsumer's default when absent. */
  maxDeliver?: number;
}

/**
 * The consumers that turn events into notifications: every orders.v1 event and
 * payments.v1.PaymentRefunded. Each notification is written in the inbox transaction of its event
 * (one per event however often it is delivered); watchers are woken after the commit.
 */
export function notificationConsumers(opts: NotificationConsumersOptions): EventConsumer[] {
  const make = (durable: string, stream: string, subject: string, decoders: Decoder[]) => {
    // Messages of one consumer are processed one at a time, so what this set holds after next()
    // was written by that message's transaction.
    const woken = new Set<string>();
    const record: Recorder = async (trx, envelope, event) => {
      const stored = await insertNotificationIn(trx, {
        id: randomUUID(),
        customerId: event.customerId,
        kind: event.kind,
        ...compose(event),
        orderId: event.orderId,
        sourceEventId: envelope.id,
        createdAt: Date.now(),
      });
      if (stored) woken.add(event.customerId);
    };
    return new EventConsumer({
      nats: opts.nats,
      database: opts.database,
      durable,
      stream,
      filterSubjects: [subject],
      handlers: decoders.map((d) => d(record)),
      maxDeliver: opts.maxDeliver,
      logger: opts.logger,
      onMessage: async (_msg, _ctx, next) => {
        woken.clear();
        await next();
        for (const customerId of woken) opts.feed.notify(customerId);
        woken.clear();
      },
    });
  };
  return [
    make(ORDERS_CONSUMER, domainStream("orders").name, "orders.>", orderHandlers),
    make(PAYMENTS_CONSUMER, domainStream("payments").name, subjectFor(PaymentRefundedSchema), paymentHandlers),
  ];
}

function amount(m: Money | undefined): Amount {
  return { currency: m?.currencyCode ?? "", minor: Number(m?.amountMinor ?? 0n) };
}

/** Stores the notification of one event in its inbox transaction. */
type Recorder = (trx: Transaction<any>, envelope: EventEnvelope, event: CustomerEvent) => Promise<void>;
/** A handler factory: decodes one payload type into the facts a customer hears about. */
type Decoder = (record: Recorder) => EventHandler<any>;

function decode<D extends DescMessage>(schema: D, toEvent: (payload: MessageShape<D>) => CustomerEvent): Decoder {
  return (record) => on(schema, (payload, envelope, trx) => record(trx, envelope, toEvent(payload)));
}

const orderHandlers: Decoder[] = [
  decode(OrderPlacedSchema, (p) => ({
    kind: "ORDER_PLACED",
    orderId: p.orderId,
    customerId: p.customerId,
    total: amount(p.total),
    itemCount: p.items.reduce((n, it) => n + it.quantity, 0),
  })),
  decode(OrderConfirmedSchema, (p) => ({ kind: "ORDER_CONFIRMED", orderId: p.orderId, customerId: p.customerId, total: amount(p.total) })),
  decode(OrderFailedSchema, (p) => ({ kind: "ORDER_FAILED", orderId: p.orderId, customerId: p.customerId, reason: ErrorReason[p.reason] ?? "UNSPECIFIED" })),
  decode(OrderCancelledSchema, (p) => ({
    kind: "ORDER_CANCELLED",
    orderId: p.orderId,
    customerId: p.customerId,
    total: amount(p.total),
    wasPaid: p.previousStatus === OrderStatus.CONFIRMED,
  })),
];

const paymentHandlers: Decoder[] = [
  decode(PaymentRefundedSchema, (p) => ({ kind: "PAYMENT_REFUNDED", orderId: p.orderId, customerId: p.customerId, amount: amount(p.amount) })),
];
