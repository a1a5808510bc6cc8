import { create } from "@bufbuild/protobuf";
import { timestampFromMs } from "@bufbuild/protobuf/wkt";
import { MoneySchema, type Money } from "../../gen/common/v1/money_pb.js";
import {
  ErrorReason,
  OrderItemSchema,
  OrderSchema,
  OrderStatus,
  type Order as OrderMessage,
  type OrderItem as OrderItemMessage,
} from "../../gen/orders/v1/orders_pb.js";
import type { FailureReason, Order, OrderItem, OrderStatus as DomainStatus } from "./domain/order.js";

/** Integer minor units and a currency as common.v1.Money. */
export function money(currency: string, amountMinor: number): Money {
  return create(MoneySchema, { currencyCode: currency, amountMinor: BigInt(amountMinor) });
}

/** common.v1.Money as a safe JS integer of minor units; undefined when it does not fit. */
export function minorOf(m: Money): number | undefined {
  const n = Number(m.amountMinor);
  return Number.isSafeInteger(n) ? n : undefined;
}

export function statusToProto(status: DomainStatus): OrderStatus {
  return OrderStatus[status];
}

export function reasonToProto(reason: FailureReason): ErrorReason {
  return ErrorReason[reason];
}

export function itemToProto(item: OrderItem, currency: string): OrderItemMessage {
  return create(OrderItemSchema, {
    productId: item.productId,
    name: item.name,
    quantity: item.quantity,
    unitPrice: money(currency, item.unitPriceMinor),
  });
}

/** The domain order as orders.v1.Order (failure_reason only when FAILED, cancel_reason only when CANCELLED). */
export function orderToProto(order: Order): OrderMessage {
  return create(OrderSchema, {
    id: order.id,
    customerId: order.customerId,
    items: order.items.map((it) => itemToProto(it, order.currency)),
    total: money(order.currency, order.totalMinor),
    status: statusToProto(order.status),
    failureReason: order.status === "FAILED" && order.failure ? reasonToProto(order.failure.reason) : ErrorReason.UNSPECIFIED,
    cancelReason: order.status === "CANCELLED" ? order.cancelReason : "",
    paymentId: order.paymentId,
    reservationId: order.reservationId,
    createTime: timestampFromMs(order.createdAt),
    updateTime: timestampFromMs(order.updatedAt),
  });
}
