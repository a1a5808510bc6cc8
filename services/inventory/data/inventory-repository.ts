import { create } from "@bufbuild/protobuf";
import { timestampFromMs } from "@bufbuild/protobuf/wkt";
import { sql, type Kysely, type Transaction } from "kysely";
import { ReservationExpiredSchema, StockLowSchema, StockReservedSchema } from "../../../gen/inventory/v1/events_pb.js";
import { isUniqueViolation, transaction, type Database } from "../../../mesh/db/index.js";
import { enqueueEvent } from "../../../mesh/events/index.js";
import { ReservationRaceError } from "../domain/errors.js";
import type {
  InventoryEvent,
  InventoryRepository,
  InventoryUnitOfWork,
  Reservation,
  ReservationItem,
  ReservationStatus,
  Stock,
  StockMove,
} from "../domain/model.js";

interface InventoryTables {
  stock: { product_id: string; received: number; available: number; reserved: number; sold: number; low_announced: number; updated_at: number };
  reservations: { id: string; order_id: string; status: ReservationStatus; expire_at: number; created_at: number; updated_at: number; release_reason: string | null };
  reservation_items: { reservation_id: string; product_id: string; quantity: number };
}

type Db = Kysely<InventoryTables>;

/** Producer name in event envelopes. */
export const PRODUCER = "inventory";

/** Which bucket a move takes units from and which it puts them into. */
const MOVES: Record<StockMove, { from: "available" | "reserved" | "sold"; to: "available" | "reserved" | "sold" }> = {
  reserve: { from: "available", to: "reserved" },
  unreserve: { from: "reserved", to: "available" },
  sell: { from: "reserved", to: "sold" },
  unsell: { from: "sold", to: "available" },
};

/** {@link InventoryRepository} on SQLite or PostgreSQL. */
export class SqlInventoryRepository implements InventoryRepository {
  private readonly db: Db;

  constructor(private readonly database: Database) {
    this.db = database.db as Db;
  }

  async getStock(productId: string): Promise<Stock | undefined> {
    const row = await this.db.selectFrom("stock").selectAll().where("product_id", "=", productId).executeTakeFirst();
    return row && toStock(row);
  }

  async getReservation(id: string): Promise<Reservation | undefined> {
    return readReservation(this.db, id, false);
  }

  inTransaction<T>(fn: (uow: InventoryUnitOfWork) => Promise<T>): Promise<T> {
    return transaction(this.database, (trx) => fn(new SqlUnitOfWork(trx as unknown as Transaction<InventoryTables>)));
  }

  async dueReservations(now: number, limit: number): Promise<string[]> {
    const rows = await this.db
      .selectFrom("reservations")
      .select("id")
      .where("status", "=", "RESERVED")
      .where("expire_at", "<=", now)
      .orderBy("expire_at")
      .limit(limit)
      .execute();
    return rows.map((r) => r.id);
  }

  /** Every product's stock, for invariant checks in tests and tools. */
  async allStock(): Promise<Stock[]> {
    const rows = await this.db.selectFrom("stock").selectAll().orderBy("product_id").execute();
    return rows.map(toStock);
  }
}

class SqlUnitOfWork implements InventoryUnitOfWork {
  constructor(private readonly trx: Transaction<InventoryTables>) {}

  lockReservation(id: string): Promise<Reservation | undefined> {
    return readReservation(this.trx, id, true);
  }

  async insertReservation(r: Reservation, now: number): Promise<void> {
    try {
      await this.trx
        .insertInto("reservations")
        .values({ id: r.id, order_id: r.orderId, status: r.status, expire_at: r.expireAt, created_at: now, updated_at: now, release_reason: null })
        .execute();
    } catch (err) {
      if (isUniqueViolation(err)) throw new ReservationRaceError(r.id);
      throw err;
    }
    await this.trx
      .insertInto("reservation_items")
      .values(r.items.map((i) => ({ reservation_id: r.id, product_id: i.productId, quantity: i.quantity })))
      .execute();
  }

  async setReservationStatus(id: string, status: ReservationStatus, now: number, reason?: string): Promise<void> {
    await this.trx
      .updateTable("reservations")
      .set({ status, updated_at: now, ...(reason !== undefined ? { release_reason: reason } : {}) })
      .where("id", "=", id)
      .execute();
  }

  async moveStock(productId: string, move: StockMove, quantity: number, now: number): Promise<Stock | "not-found" | { short: Stock }> {
    const { from, to } = MOVES[move];
    // One conditional update: the row lock (PostgreSQL re-checks the condition after waiting for
    // a concurrent writer) makes "check then take" atomic, so stock can never go negative.
    const row = await this.trx
      .updateTable("stock")
      .set({
        [from]: sql`${sql.ref(from)} - ${quantity}`,
        [to]: sql`${sql.ref(to)} + ${quantity}`,
        updated_at: now,
      })
      .where("product_id", "=", productId)
      .where(from, ">=", quantity)
      .returningAll()
      .executeTakeFirst();
    if (row) return toStock(row);
    const current = await this.trx.selectFrom("stock").selectAll().where("product_id", "=", productId).executeTakeFirst();
    return current ? { short: toStock(current) } : "not-found";
  }

  async setLowAnnounced(productId: string, announced: boolean): Promise<void> {
    await this.trx.updateTable("stock").set({ low_announced: announced ? 1 : 0 }).where("product_id", "=", productId).execute();
  }

  async recordEvent(e: InventoryEvent): Promise<void> {
    const trx = this.trx as unknown as Transaction<any>;
    switch (e.type) {
      case "StockReserved":
        await enqueueEvent(trx, {
          schema: StockReservedSchema,
          message: create(StockReservedSchema, { reservationId: e.reservationId, orderId: e.orderId, items: e.items, expireTime: timestampFromMs(e.expireAt) }),
          producer: PRODUCER,
          aggregateId: e.reservationId,
        });
        return;
      case "StockLow":
        await enqueueEvent(trx, {
          schema: StockLowSchema,
          message: create(StockLowSchema, { productId: e.productId, available: e.available, threshold: e.threshold }),
          producer: PRODUCER,
          aggregateId: e.productId,
        });
        return;
      case "ReservationExpired":
        await enqueueEvent(trx, {
          schema: ReservationExpiredSchema,
          message: create(ReservationExpiredSchema, { reservationId: e.reservationId, orderId: e.orderId, items: e.items }),
          producer: PRODUCER,
          aggregateId: e.reservationId,
        });
        return;
    }
  }
}

async function readReservation(db: Db | Transaction<InventoryTables>, id: string, lock: boolean): Promise<Reservation | undefined> {
  let q = db.selectFrom("reservations").selectAll().where("id", "=", id);
  if (lock) q = q.forUpdate();
  const row = await q.executeTakeFirst();
  if (!row) return undefined;
  const items = await db.selectFrom("reservation_items").select(["product_id", "quantity"]).where("reservation_id", "=", id).execute();
  return {
    id: row.id,
    orderId: row.order_id,
    // Sorted here rather than in SQL: PostgreSQL's collation may order text differently from JS.
    items: items.map((i): ReservationItem => ({ productId: i.product_id, quantity: Number(i.quantity) })).sort((a, b) => (a.productId < b.productId ? -1 : 1)),
    status: row.status,
    expireAt: Number(row.expire_at),
    createdAt: Number(row.created_at),
    updatedAt: Number(row.updated_at),
  };
}

function toStock(r: InventoryTables["stock"]): Stock {
  return {
    productId: r.product_id,
    available: Number(r.available),
    reserved: Number(r.reserved),
    sold: Number(r.sold),
    received: Number(r.received),
    lowAnnounced: Number(r.low_announced) === 1,
    updatedAt: Number(r.updated_at),
  };
}
