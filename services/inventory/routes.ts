import { errorWithReason } from "../../mesh/grpc/index.js";
import { create } from "@bufbuild/protobuf";
import { timestampFromMs, type Duration } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError, type ServiceImpl } from "@connectrpc/connect";
import {
  ErrorReason,
  ErrorReasonSchema,
  InventoryService,
  ReservationSchema,
  ReservationStatus,
  StockSchema,
  type Reservation as ReservationMessage,
  type Stock as StockMessage,
} from "../../gen/inventory/v1/inventory_pb.js";
import {
  DomainError,
  InsufficientStockError,
  ProductNotFoundError,
  ReservationConflictError,
  ReservationExpiredError,
  ReservationNotFoundError,
  ReservationReleasedError,
  ValidationError,
  WatchClosedError,
} from "./domain/errors.js";
import type { Inventory } from "./domain/inventory.js";
import { onHand, type Reservation, type Stock } from "./domain/model.js";

/** The gRPC surface of the inventory: request → domain call → response, domain errors → codes. */
export function routes(inventory: Inventory): ServiceImpl<typeof InventoryService> {
  return {
    async getStock(req) {
      return { stock: toStockMessage(await call(() => inventory.getStock(req.productId))) };
    },
    async reserve(req) {
      const reservation = await call(() =>
        inventory.reserve({
          reservationId: req.reservationId,
          orderId: req.orderId,
          items: req.items.map((i) => ({ productId: i.productId, quantity: i.quantity })),
          ttlMs: req.ttl ? durationMs(req.ttl) : undefined,
        }),
      );
      return { reservation: toReservationMessage(reservation) };
    },
    async commitReservation(req) {
      return { reservation: toReservationMessage(await call(() => inventory.commit(req.reservationId))) };
    },
    async releaseReservation(req) {
      return { reservation: toReservationMessage(await call(() => inventory.release(req.reservationId, req.reason))) };
    },
    async *watchStock(req, ctx) {
      try {
        for await (const stock of inventory.watchStock(req.productId, ctx.signal)) yield { stock: toStockMessage(stock) };
      } catch (err) {
        throw toConnectError(err);
      }
    },
  };
}

function durationMs(d: Duration): number {
  return Number(d.seconds) * 1_000 + Math.trunc(d.nanos / 1_000_000);
}

const STATUS: Record<Reservation["status"], ReservationStatus> = {
  RESERVED: ReservationStatus.RESERVED,
  COMMITTED: ReservationStatus.COMMITTED,
  RELEASED: ReservationStatus.RELEASED,
  EXPIRED: ReservationStatus.EXPIRED,
};

function toStockMessage(s: Stock): StockMessage {
  return create(StockSchema, { productId: s.productId, onHand: onHand(s), reserved: s.reserved, available: s.available, updateTime: timestampFromMs(s.updatedAt) });
}

function toReservationMessage(r: Reservation): ReservationMessage {
  return create(ReservationSchema, {
    id: r.id,
    orderId: r.orderId,
    items: r.items,
    status: STATUS[r.status],
    expireTime: timestampFromMs(r.expireAt),
    createTime: timestampFromMs(r.createdAt),
    updateTime: timestampFromMs(r.updatedAt),
  });
}

async function call<T>(fn: () => Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (err) {
    throw toConnectError(err);
  }
}

/** Maps a domain error to its code and inventory.v1 reason; anything else passes through (Internal). */
export function toConnectError(err: unknown): unknown {
  if (!(err instanceof DomainError)) return err;
  if (err instanceof ValidationError) {
    return err.invalidItems ? errorWithReason(err.message, Code.InvalidArgument, ErrorReasonSchema, ErrorReason.INVALID_ITEMS, err.metadata) : new ConnectError(err.message, Code.InvalidArgument);
  }
  if (err instanceof ProductNotFoundError) return errorWithReason(err.message, Code.NotFound, ErrorReasonSchema, ErrorReason.PRODUCT_NOT_FOUND, err.metadata);
  if (err instanceof InsufficientStockError) return errorWithReason(err.message, Code.FailedPrecondition, ErrorReasonSchema, ErrorReason.INSUFFICIENT_STOCK, err.metadata);
  if (err instanceof ReservationNotFoundError) return errorWithReason(err.message, Code.NotFound, ErrorReasonSchema, ErrorReason.RESERVATION_NOT_FOUND, err.metadata);
  if (err instanceof ReservationExpiredError) return errorWithReason(err.message, Code.FailedPrecondition, ErrorReasonSchema, ErrorReason.RESERVATION_EXPIRED, err.metadata);
  if (err instanceof ReservationReleasedError) return errorWithReason(err.message, Code.FailedPrecondition, ErrorReasonSchema, ErrorReason.RESERVATION_RELEASED, err.metadata);
  if (err instanceof ReservationConflictError) return errorWithReason(err.message, Code.AlreadyExists, ErrorReasonSchema, ErrorReason.RESERVATION_CONFLICT, err.metadata);
  if (err instanceof WatchClosedError) return new ConnectError(err.message, Code.Unavailable);
  return new ConnectError(err.message, Code.Internal);
}

