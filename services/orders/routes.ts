import { Code, ConnectError, type HandlerContext, type ServiceImpl } from "@connectrpc/connect";
import { ErrorReason, ErrorReasonSchema, OrderService } from "../../gen/orders/v1/orders_pb.js";
import { errorWithReason } from "../../mesh/grpc/index.js";
import { injectTraceHeaders } from "../../mesh/telemetry/index.js";
import { minorOf, orderToProto } from "./convert.js";
import {
  CheckoutFailedError,
  CheckoutUnavailableError,
  DomainError,
  IdempotencyKeyReusedError,
  InvalidItemsError,
  InvalidPageTokenError,
  NotCancellableError,
  OrderNotFoundError,
  ValidationError,
} from "./domain/errors.js";
import type { OrdersService } from "./domain/orders.js";

/** The OrderService handlers: request → use case → response, domain errors → gRPC codes with reasons. */
export function routes(orders: OrdersService): ServiceImpl<typeof OrderService> {
  return {
    async createOrder(req, ctx) {
      return guard(async () => {
        const items = req.items.map((it, i) => {
          if (!it.expectedUnitPrice) return { productId: it.productId, quantity: it.quantity };
          const amountMinor = minorOf(it.expectedUnitPrice);
          if (amountMinor === undefined) throw new ValidationError(`items[${i}].expected_unit_price`, `expected_unit_price ${it.expectedUnitPrice.amountMinor} is out of range`);
          return { productId: it.productId, quantity: it.quantity, expectedUnitPrice: { currency: it.expectedUnitPrice.currencyCode, amountMinor } };
        });
        const order = await orders.create(
          { idempotencyKey: req.idempotencyKey, customerId: req.customerId, currency: req.currencyCode, cardNumber: req.cardNumber, items },
          // The saga continues this call's trace: store this server span, not the caller's.
          { timeoutMs: ctx.timeoutMs(), signal: ctx.signal, traceparent: injectTraceHeaders().traceparent ?? ctx.requestHeader.get("traceparent") ?? undefined },
        );
        return { order: orderToProto(order) };
      });
    },
    async getOrder(req) {
      return guard(async () => ({ order: orderToProto(await orders.get(req.orderId)) }));
    },
    async listOrders(req) {
      return guard(async () => {
        const page = await orders.list(req.customerId, req.pageSize, req.pageToken);
        return { orders: page.orders.map(orderToProto), nextPageToken: page.nextPageToken };
      });
    },
    async cancelOrder(req, ctx) {
      return guard(async () => ({ order: orderToProto(await orders.cancel(req.orderId, req.reason, ctx.signal)) }));
    },
    async *watchOrder(req, ctx: HandlerContext) {
      try {
        for await (const order of orders.watch(req.orderId, ctx.signal)) yield { order: orderToProto(order) };
      } catch (err) {
        throw toConnectError(err);
      }
    },
  };
}

async function guard<T>(fn: () => Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (err) {
    throw toConnectError(err);
  }
}

/** A domain error as a ConnectError with its code and meshwork.v1.ErrorDetail; anything else unchanged. */
export function toConnectError(err: unknown): unknown {
  if (!(err instanceof DomainError)) return err;
  const [code, reason] = classify(err);
  if (reason === undefined) return new ConnectError(err.message, code);
  return errorWithReason(err.message, code, ErrorReasonSchema, ErrorReason[reason], err.metadata);
}

function classify(err: DomainError): [Code, keyof typeof ErrorReason | undefined] {
  if (err instanceof CheckoutFailedError) return [err.retryable ? Code.Unavailable : Code.FailedPrecondition, err.reason];
  if (err instanceof OrderNotFoundError) return [Code.NotFound, "ORDER_NOT_FOUND"];
  if (err instanceof NotCancellableError) return [Code.FailedPrecondition, "ORDER_NOT_CANCELLABLE"];
  if (err instanceof IdempotencyKeyReusedError) return [Code.AlreadyExists, "IDEMPOTENCY_KEY_REUSED"];
  if (err instanceof InvalidItemsError) return [Code.InvalidArgument, "INVALID_ITEMS"];
  if (err instanceof InvalidPageTokenError) return [Code.InvalidArgument, "INVALID_PAGE_TOKEN"];
  if (err instanceof CheckoutUnavailableError) return [Code.Unavailable, undefined];
  if (err instanceof ValidationError) return [Code.InvalidArgument, undefined];
  return [Code.Internal, undefined];
}
