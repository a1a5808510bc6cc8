import { create } from "@bufbuild/protobuf";
import type { Transaction } from "kysely";
import { OrderCancelledSchema, OrderConfirmedSchema, OrderFailedSchema, OrderPlacedSchema } from "../../../gen/orders/v1/events_pb.js";
import { ErrorReason } from "../../../gen/orders/v1/orders_pb.js";
import { enqueueEvent } from "../../../mesh/events/index.js";
import { itemToProto, money, reasonToProto, statusToProto } from "../convert.js";
import type { Order } from "../domain/order.js";
import type { OrderEventKind } from "../domain/repository.js";

/** Producer name in every envelope. */
export const PRODUCER = "orders";

/** Writes one orders.v1 event about `order` (as it is after the change) to the outbox in `trx`. */
export async function enqueueOrderEvent(trx: Transaction<any>, kind: OrderEventKind, order: Order, previousStatus?: "PENDING" | "CONFIRMED"): Promise<void> {
  const common = {
    producer: PRODUCER,
    aggregateId: order.id,
    // A resumed saga has no request context: keep the trace of the CreateOrder that started it.
    traceContext: order.traceparent ? { traceparent: order.traceparent } : undefined,
  };
  const total = money(order.currency, order.totalMinor);
  switch (kind) {
    case "placed":
      await enqueueEvent(trx, {
        ...common,
        schema: OrderPlacedSchema,
        message: create(OrderPlacedSchema, {
          orderId: order.id,
          customerId: order.customerId,
          items: order.items.map((it) => itemToProto(it, order.currency)),
          total,
        }),
      });
      return;
    case "confirmed":
      await enqueueEvent(trx, {
        ...common,
        schema: OrderConfirmedSchema,
        message: create(OrderConfirmedSchema, {
          orderId: order.id,
          customerId: order.customerId,
          total,
          paymentId: order.paymentId,
          reservationId: order.reservationId,
        }),
      });
      return;
    case "failed":
      await enqueueEvent(trx, {
        ...common,
        schema: OrderFailedSchema,
        message: create(OrderFailedSchema, {
          orderId: order.id,
          customerId: order.customerId,
          total,
          reason: order.failure ? reasonToProto(order.failure.reason) : ErrorReason.UNSPECIFIED,
        }),
      });
      return;
    case "cancelled":
      await enqueueEvent(trx, {
        ...common,
        schema: OrderCancelledSchema,
        message: create(OrderCancelledSchema, {
          orderId: order.id,
          customerId: order.customerId,
          total,
          reason: order.cancelReason,
          previousStatus: statusToProto(previousStatus ?? "PENDING"),
          paymentId: order.paymentId,
        }),
      });
      return;
  }
}
