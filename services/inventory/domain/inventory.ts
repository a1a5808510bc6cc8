import {
  InsufficientStockError,
  ProductNotFoundError,
  ReservationConflictError,
  ReservationExpiredError,
  ReservationNotFoundError,
  ReservationRaceError,
  ReservationReleasedError,
  ValidationError,
  WatchClosedError,
} from "./errors.js";
import type { InventoryRepository, InventoryUnitOfWork, Reservation, ReservationItem, Stock, StockMove } from "./model.js";
import { StockChanges } from "./stock-changes.js";

// 15 min and 1 h: the contract's default and maximum hold (inventory.proto, ReserveRequest.ttl).
export const DEFAULT_TTL_MS = 15 * 60_000;
export const MAX_TTL_MS = 60 * 60_000;
// 100 lines: far more than a shop order has, and it bounds the rows one transaction locks.
export const MAX_ITEMS = 100;
// 2 s: a watcher also re-reads on this period, so changes made by another replica on a shared
// database reach it within 2 s, at one primary-key read per watcher per period.
export const DEFAULT_WATCH_POLL_MS = 2_000;
// 100: due reservations fetched per query; each is expired in its own short transaction.
const SWEEP_BATCH = 100;
// 128 characters: ids are UUIDs or short slugs; anything longer is a client bug.
const ID_MAX_LENGTH = 128;

/** Options of {@link Inventory}. */
export interface InventoryOptions {
  /** StockLow is recorded when available falls to or below this. */
  lowStockThreshold: number;
  /** Epoch ms now; injectable for tests. */
  clock?: () => number;
  /** Runs after a transaction that recorded events committed, e.g. `relay.kick()`. */
  onEventsCommitted?: () => void;
  /** See {@link DEFAULT_WATCH_POLL_MS}. */
  watchPollMs?: number;
}

/** What Reserve asks for. */
export interface ReserveCommand {
  reservationId: string;
  orderId: string;
  items: ReservationItem[];
  /** Hold duration; undefined or 0 means {@link DEFAULT_TTL_MS}. */
  ttlMs?: number;
}

/** Stock and reservations: the use cases, each one transaction, with change notifications. */
export class Inventory {
  /** Change notifications for WatchStock. */
  readonly changes = new StockChanges();
  private readonly clock: () => number;
  private readonly watchPollMs: number;

  constructor(
    private readonly repo: InventoryRepository,
    private readonly opts: InventoryOptions,
  ) {
    this.clock = opts.clock ?? Date.now;
    this.watchPollMs = opts.watchPollMs ?? DEFAULT_WATCH_POLL_MS;
  }

  /** The stock of one product. */
  async getStock(productId: string): Promise<Stock> {
    requireId("product_id", productId);
    const stock = await this.repo.getStock(productId);
    if (!stock) throw new ProductNotFoundError(productId);
    return stock;
  }

  /** A reservation by id (for tests and support tooling). */
  async getReservation(id: string): Promise<Reservation> {
    requireId("reservation_id", id);
    const r = await this.repo.getReservation(id);
    if (!r) throw new ReservationNotFoundError(id);
    return r;
  }

  /**
   * Holds stock for an order, all items or none, in one transaction. Idempotent by reservation id:
   * the same id with the same order and items returns the stored reservation (in its current
   * status); with different ones it fails with ReservationConflictError.
   */
  async reserve(cmd: ReserveCommand): Promise<Reservation> {
    requireId("reservation_id", cmd.reservationId);
    requireId("order_id", cmd.orderId);
    const items = normalizeItems(cmd.items);
    const ttlMs = checkTtl(cmd.ttlMs);
    for (let attempt = 1; ; attempt++) {
      try {
        return await this.tx((uow) => this.reserveIn(uow, cmd, items, ttlMs));
      } catch (err) {
        // A concurrent Reserve with the same id committed first: answer from its reservation.
        if (err instanceof ReservationRaceError && attempt === 1) continue;
        throw err;
      }
    }
  }

  private async reserveIn(uow: InventoryUnitOfWork, cmd: ReserveCommand, items: ReservationItem[], ttlMs: number): Promise<Reservation> {
    const existing = await uow.lockReservation(cmd.reservationId);
    if (existing) {
      if (existing.orderId !== cmd.orderId || !sameItems(existing.items, items)) throw new ReservationConflictError(cmd.reservationId);
      return existing;
    }
    const now = this.clock();
    const reservation: Reservation = {
      id: cmd.reservationId,
      orderId: cmd.orderId,
      items,
      status: "RESERVED",
      expireAt: now + ttlMs,
      createdAt: now,
      updatedAt: now,
    };
    // Inserted first: a concurrent duplicate then waits on the key instead of touching stock.
    await uow.insertReservation(reservation, now);
    // Items are sorted by product id, so concurrent transactions lock stock rows in one order.
    for (const item of items) {
      const moved = await uow.moveStock(item.productId, "reserve", item.quantity, now);
      if (moved === "not-found") throw new ProductNotFoundError(item.productId);
      if ("short" in moved) throw new InsufficientStockError(item.productId, item.quantity, moved.short.available);
      await this.checkLowStock(uow, moved);
    }
    await uow.recordEvent({ type: "StockReserved", reservationId: reservation.id, orderId: reservation.orderId, items, expireAt: reservation.expireAt });
    return reservation;
  }

  /**
   * RESERVED → COMMITTED: the units are sold. Committing a committed reservation returns it; a
   * released or expired one fails. A RESERVED one past its expiry is expired now (and fails).
   */
  async commit(reservationId: string): Promise<Reservation> {
    requireId("reservation_id", reservationId);
    const out = await this.tx(async (uow) => {
      const r = await this.lock(uow, reservationId);
      const now = this.clock();
      switch (r.status) {
        case "COMMITTED":
          return r;
        case "RELEASED":
          throw new ReservationReleasedError(r.id);
        case "EXPIRED":
          throw new ReservationExpiredError(r.id);
        case "RESERVED":
          if (r.expireAt <= now) {
            // Expire it in this committed transaction, then report it: the stock is free again.
            await this.expireIn(uow, r, now);
            return "expired" as const;
          }
          await this.moveAll(uow, r.items, "sell", now);
          await uow.setReservationStatus(r.id, "COMMITTED", now);
          return { ...r, status: "COMMITTED" as const, updatedAt: now };
      }
    });
    if (out === "expired") throw new ReservationExpiredError(reservationId);
    return out;
  }

  /**
   * Gives the stock back: RESERVED → RELEASED (units leave reserved), COMMITTED → RELEASED (units
   * return from sold). Releasing a released or expired reservation returns it unchanged.
   */
  async release(reservationId: string, reason: string): Promise<Reservation> {
    requireId("reservation_id", reservationId);
    return this.tx(async (uow) => {
      const r = await this.lock(uow, reservationId);
      const now = this.clock();
      if (r.status === "RELEASED" || r.status === "EXPIRED") return r;
      await this.moveAll(uow, r.items, r.status === "RESERVED" ? "unreserve" : "unsell", now);
      await uow.setReservationStatus(r.id, "RELEASED", now, reason);
      return { ...r, status: "RELEASED" as const, updatedAt: now };
    });
  }

  /**
   * Expires every RESERVED reservation whose expiry is at or before `now`: its units become
   * available again and ReservationExpired is recorded. One transaction per reservation, each
   * re-checking the status under lock, so concurrent sweepers and commits never double-release.
   * Returns how many this call expired.
   */
  async sweepExpired(now: number = this.clock()): Promise<number> {
    let expired = 0;
    for (;;) {
      const due = await this.repo.dueReservations(now, SWEEP_BATCH);
      for (const id of due) {
        const done = await this.tx(async (uow) => {
          const r = await uow.lockReservation(id);
          if (!r || r.status !== "RESERVED" || r.expireAt > now) return false;
          await this.expireIn(uow, r, now);
          return true;
        });
        if (done) expired++;
      }
      if (due.length < SWEEP_BATCH) return expired;
    }
  }

  /**
   * The stock of a product now and after every change, until `signal` aborts (the stream ends) or
   * {@link closeWatches} is called (WatchClosedError). Unchanged re-reads are not repeated.
   */
  async *watchStock(productId: string, signal: AbortSignal): AsyncGenerator<Stock> {
    requireId("product_id", productId);
    if (this.changes.closed) throw new WatchClosedError();
    let pending = false;
    let wake: (() => void) | undefined;
    const notify = () => {
      pending = true;
      wake?.();
    };
    const unsubscribe = this.changes.subscribe(productId, notify);
    signal.addEventListener("abort", notify);
    try {
      let last: Stock | undefined;
      for (;;) {
        pending = false;
        const stock = await this.getStock(productId);
        if (signal.aborted) return;
        if (!last || changed(last, stock)) {
          last = stock;
          yield stock;
        }
        if (!pending && !signal.aborted && !this.changes.closed) {
          await new Promise<void>((resolve) => {
            const timer = setTimeout(resolve, this.watchPollMs);
            wake = () => {
              clearTimeout(timer);
              resolve();
            };
          });
          wake = undefined;
        }
        if (signal.aborted) return;
        if (this.changes.closed) throw new WatchClosedError();
      }
    } finally {
      unsubscribe();
      signal.removeEventListener("abort", notify);
    }
  }

  /** Ends every open watch with WatchClosedError; call when the server starts draining. */
  closeWatches(): void {
    this.changes.close();
  }

  /** Runs fn in a transaction, then notifies watchers of the products it moved and kicks the relay. */
  private async tx<T>(fn: (uow: InventoryUnitOfWork) => Promise<T>): Promise<T> {
    const moved = new Set<string>();
    let events = 0;
    const result = await this.repo.inTransaction((uow) => {
      moved.clear();
      events = 0;
      const tracked: InventoryUnitOfWork = Object.assign(Object.create(uow) as InventoryUnitOfWork, {
        moveStock: async (productId: string, move: StockMove, quantity: number, now: number) => {
          const r = await uow.moveStock(productId, move, quantity, now);
          if (r !== "not-found" && !("short" in r)) moved.add(productId);
          return r;
        },
        recordEvent: async (e: Parameters<InventoryUnitOfWork["recordEvent"]>[0]) => {
          await uow.recordEvent(e);
          events++;
        },
      });
      return fn(tracked);
    });
    this.changes.publish(moved);
    if (events > 0) this.opts.onEventsCommitted?.();
    return result;
  }

  private async lock(uow: InventoryUnitOfWork, id: string): Promise<Reservation> {
    const r = await uow.lockReservation(id);
    if (!r) throw new ReservationNotFoundError(id);
    return r;
  }

  private async expireIn(uow: InventoryUnitOfWork, r: Reservation, now: number): Promise<void> {
    await this.moveAll(uow, r.items, "unreserve", now);
    await uow.setReservationStatus(r.id, "EXPIRED", now, "expired");
    await uow.recordEvent({ type: "ReservationExpired", reservationId: r.id, orderId: r.orderId, items: r.items });
  }

  /** Moves every item's units; the reservation's own units must be where its status says. */
  private async moveAll(uow: InventoryUnitOfWork, items: ReservationItem[], move: StockMove, now: number): Promise<void> {
    for (const item of items) {
      const moved = await uow.moveStock(item.productId, move, item.quantity, now);
      if (moved === "not-found" || "short" in moved) {
        throw new Error(`stock of ${item.productId} cannot ${move} ${item.quantity} units: the stock invariant is broken`);
      }
      await this.checkLowStock(uow, moved);
    }
  }

  /** Records StockLow once per dip to or below the threshold; re-arms when stock recovers. */
  private async checkLowStock(uow: InventoryUnitOfWork, s: Stock): Promise<void> {
    const threshold = this.opts.lowStockThreshold;
    const low = s.available <= threshold;
    if (low && !s.lowAnnounced) {
      await uow.setLowAnnounced(s.productId, true);
      await uow.recordEvent({ type: "StockLow", productId: s.productId, available: s.available, threshold });
    } else if (!low && s.lowAnnounced) {
      await uow.setLowAnnounced(s.productId, false);
    }
  }
}

function requireId(field: string, value: string): void {
  if (!value) throw new ValidationError(field, `${field} must not be empty`);
  if (value.length > ID_MAX_LENGTH) throw new ValidationError(field, `${field} is ${value.length} characters long; the limit is ${ID_MAX_LENGTH}`);
}

/** Validates the item list and returns it sorted by product id. */
function normalizeItems(items: ReservationItem[]): ReservationItem[] {
  if (items.length === 0) throw new ValidationError("items", "items must list at least one product", true);
  if (items.length > MAX_ITEMS) throw new ValidationError("items", `items has ${items.length} entries; the limit is ${MAX_ITEMS}`, true);
  const seen = new Set<string>();
  items.forEach((item, i) => {
    if (!item.productId) throw new ValidationError(`items[${i}].product_id`, `items[${i}].product_id must not be empty`, true);
    if (item.productId.length > ID_MAX_LENGTH) throw new ValidationError(`items[${i}].product_id`, `items[${i}].product_id is too long`, true);
    if (!Number.isInteger(item.quantity) || item.quantity < 1) {
      throw new ValidationError(`items[${i}].quantity`, `items[${i}].quantity must be at least 1, got ${item.quantity}`, true);
    }
    if (seen.has(item.productId)) throw new ValidationError(`items[${i}].product_id`, `product ${item.productId} appears more than once in items`, true);
    seen.add(item.productId);
  });
  return [...items].map((i) => ({ productId: i.productId, quantity: i.quantity })).sort((a, b) => (a.productId < b.productId ? -1 : 1));
}

function checkTtl(ttlMs: number | undefined): number {
  if (ttlMs === undefined || ttlMs === 0) return DEFAULT_TTL_MS;
  if (!Number.isFinite(ttlMs) || ttlMs < 0) throw new ValidationError("ttl", `ttl must not be negative, got ${ttlMs} ms`);
  if (ttlMs > MAX_TTL_MS) throw new ValidationError("ttl", `ttl is ${ttlMs} ms; the limit is ${MAX_TTL_MS} ms`);
  return ttlMs;
}

function sameItems(a: ReservationItem[], b: ReservationItem[]): boolean {
  return a.length === b.length && a.every((x, i) => x.productId === b[i].productId && x.quantity === b[i].quantity);
}

function changed(a: Stock, b: Stock): boolean {
  return a.available !== b.available || a.reserved !== b.reserved || a.sold !== b.sold || a.received !== b.received || a.updatedAt !== b.updatedAt;
}
