/**
 * Stock of one product. Units move between three buckets and never appear or vanish except by a
 * restock: `available + reserved + sold === received` always (the database enforces it too).
 */
export interface Stock {
  productId: string;
  /** Units that can still be reserved. */
  available: number;
  /** Units held by RESERVED reservations. */
  reserved: number;
  /** Units of COMMITTED reservations (they left the warehouse). */
  sold: number;
  /** Units ever put into stock. */
  received: number;
  /** True once a StockLow event announced the current dip below the threshold. */
  lowAnnounced: boolean;
  /** Epoch ms of the last change. */
  updatedAt: number;
}

/** Units physically in the warehouse, reserved ones included (the contract's on_hand). */
export function onHand(s: Stock): number {
  return s.available + s.reserved;
}

/** Life cycle of a reservation. */
export type ReservationStatus = "RESERVED" | "COMMITTED" | "RELEASED" | "EXPIRED";

/** One product and quantity held by a reservation. */
export interface ReservationItem {
  productId: string;
  quantity: number;
}

/** Stock held for one order. */
export interface Reservation {
  id: string;
  orderId: string;
  /** Sorted by product id; each product at most once. */
  items: ReservationItem[];
  status: ReservationStatus;
  /** Epoch ms after which a RESERVED reservation is released by the sweeper. */
  expireAt: number;
  createdAt: number;
  updatedAt: number;
}

/** How units move between the buckets of a {@link Stock}. */
export type StockMove =
  /** available → reserved */
  | "reserve"
  /** reserved → available */
  | "unreserve"
  /** reserved → sold */
  | "sell"
  /** sold → available (a committed reservation released after all) */
  | "unsell";

/** Facts recorded in the outbox in the same transaction as the change. */
export type InventoryEvent =
  | { type: "StockReserved"; reservationId: string; orderId: string; items: ReservationItem[]; expireAt: number }
  | { type: "StockLow"; productId: string; available: number; threshold: number }
  | { type: "ReservationExpired"; reservationId: string; orderId: string; items: ReservationItem[] };

/** The operations a use case runs inside one database transaction. */
export interface InventoryUnitOfWork {
  /** The reservation, locked until the transaction ends. */
  lockReservation(id: string): Promise<Reservation | undefined>;
  /** Inserts a new reservation; throws ReservationRaceError if the id exists. */
  insertReservation(r: Reservation, now: number): Promise<void>;
  setReservationStatus(id: string, status: ReservationStatus, now: number, reason?: string): Promise<void>;
  /**
   * Moves `quantity` units of a product between buckets if the source bucket holds them. Returns the
   * new stock, "not-found" for an untracked product, or the unchanged stock as `{ short }` when the
   * source bucket has fewer units.
   */
  moveStock(productId: string, move: StockMove, quantity: number, now: number): Promise<Stock | "not-found" | { short: Stock }>;
  setLowAnnounced(productId: string, announced: boolean): Promise<void>;
  recordEvent(event: InventoryEvent): Promise<void>;
}

/** Storage of stock and reservations. */
export interface InventoryRepository {
  getStock(productId: string): Promise<Stock | undefined>;
  getReservation(id: string): Promise<Reservation | undefined>;
  /** Runs fn in one transaction: committed when it resolves, rolled back when it throws. */
  inTransaction<T>(fn: (uow: InventoryUnitOfWork) => Promise<T>): Promise<T>;
  /** Ids of RESERVED reservations whose expireAt <= now, oldest first, at most `limit`. */
  dueReservations(now: number, limit: number): Promise<string[]>;
}
