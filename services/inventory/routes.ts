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
import { ErrorDetailSchema } from "../../gen/meshwork/v1/errors_pb.js";
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
    return err.invalidItems ? withReason(err, Code.InvalidArgument, ErrorReason.INVALID_ITEMS) : new ConnectError(err.message, Code.InvalidArgument);
  }
  if (err instanceof ProductNotFoundError) return withReason(err, Code.NotFound, ErrorReason.PRODUCT_NOT_FOUND);
  if (err instanceof InsufficientStockError) return withReason(err, Code.FailedPrecondition, ErrorReason.INSUFFICIENT_STOCK);
  if (err instanceof ReservationNotFoundError) return withReason(err, Code.NotFound, ErrorReason.RESERVATION_NOT_FOUND);
  if (err instanceof ReservationExpiredError) return withReason(err, Code.FailedPrecondition, ErrorReason.RESERVATION_EXPIRED);
  if (err instanceof ReservationReleasedError) return withReason(err, Code.FailedPrecondition, ErrorReason.RESERVATION_RELEASED);
  if (err instanceof ReservationConflictError) return withReason(err, Code.AlreadyExists, ErrorReason.RESERVATION_CONFLICT);
  if (err instanceof WatchClosedError) return new ConnectError(err.message, Code.Unavailable);
  return new ConnectError(err.message, Code.Internal);
}

function withReason(err: DomainError, code: Code, reason: ErrorReason): ConnectError {
  return new ConnectError(err.message, code, undefined, [
    { desc: ErrorDetailSchema, value: { reason: ErrorReasonSchema.value[reason].name, domain: "inventory.v1", metadata: err.metadata } },
  ]);
}
