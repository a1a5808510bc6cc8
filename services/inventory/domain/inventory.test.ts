import {
  InsufficientStockError,
  ProductNotFoundError,
  ReservationConflictError,
  ReservationExpiredError,
  ReservationNotFoundError,
  ReservationReleasedError,
  ValidationError,
  WatchClosedError,
} from "./errors.js";
import { DEFAULT_TTL_MS, Inventory, MAX_TTL_MS } from "./inventory.js";
import type { InventoryEvent, InventoryRepository, InventoryUnitOfWork, Reservation, Stock, StockMove } from "./model.js";

interface State {
  stock: Map<string, Stock>;
  reservations: Map<string, Reservation>;
  events: InventoryEvent[];
}

const clone = (s: State): State => ({
  stock: new Map([...s.stock].map(([k, v]) => [k, { ...v }])),
  reservations: new Map([...s.reservations].map(([k, v]) => [k, { ...v, items: v.items.map((i) => ({ ...i })) }])),
  events: [...s.events],
});

const BUCKETS: Record<StockMove, [keyof Stock, keyof Stock]> = {
  reserve: ["available", "reserved"],
  unreserve: ["reserved", "available"],
  sell: ["reserved", "sold"],
  unsell: ["sold", "available"],
};

/** In-memory repository: transactions run one at a time on a copy that replaces the state on success. */
class FakeRepo implements InventoryRepository {
  state: State = { stock: new Map(), reservations: new Map(), events: [] };
  private queue: Promise<unknown> = Promise.resolve();

  constructor(stock: Record<string, number>) {
    for (const [productId, units] of Object.entries(stock)) {
      this.state.stock.set(productId, { productId, available: units, reserved: 0, sold: 0, received: units, lowAnnounced: false, updatedAt: 0 });
    }
  }
  async getStock(id: string) {
    const s = this.state.stock.get(id);
    return s && { ...s };
  }
  async getReservation(id: string) {
    return this.state.reservations.get(id);
  }
  async dueReservations(now: number, limit: number) {
    return [...this.state.reservations.values()].filter((r) => r.status === "RESERVED" && r.expireAt <= now).slice(0, limit).map((r) => r.id);
  }
  inTransaction<T>(fn: (uow: InventoryUnitOfWork) => Promise<T>): Promise<T> {
    const run = this.queue.then(async () => {
      const draft = clone(this.state);
      const uow: InventoryUnitOfWork = {
        lockReservation: async (id) => draft.reservations.get(id),
        insertReservation: async (r) => void draft.reservations.set(r.id, { ...r }),
        setReservationStatus: async (id, status, now) => void Object.assign(draft.reservations.get(id)!, { status, updatedAt: now }),
        moveStock: async (productId, move, quantity, now) => {
          const s = draft.stock.get(productId);
          if (!s) return "not-found";
          const [from, to] = BUCKETS[move];
          if ((s[from] as number) < quantity) return { short: { ...s } };
          (s[from] as number) -= quantity;
          (s[to] as number) += quantity;
          s.updatedAt = now;
          return { ...s };
        },
        setLowAnnounced: async (productId, announced) => void (draft.stock.get(productId)!.lowAnnounced = announced),
        recordEvent: async (e) => void draft.events.push(e),
      };
      const result = await fn(uow);
      this.state = draft;
      return result;
    });
    this.queue = run.catch(() => undefined);
    return run;
  }
}

function setup(stock: Record<string, number> = { a: 10, b: 10 }, threshold = 2) {
  const repo = new FakeRepo(stock);
  let now = 1_000_000;
  const kicks = { n: 0 };
  const inventory = new Inventory(repo, { lowStockThreshold: threshold, clock: () => now, onEventsCommitted: () => kicks.n++, watchPollMs: 60_000 });
  return { repo, inventory, kicks, advance: (ms: number) => (now += ms), now: () => now };
}

const conserved = (s: Stock) => s.available + s.reserved + s.sold === s.received;

describe("inventory domain", () => {
  it("reserves all items or none and records StockReserved", async () => {
    const { repo, inventory, kicks, now } = setup();
    const r = await inventory.reserve({ reservationId: "r1", orderId: "o1", items: [{ productId: "b", quantity: 2 }, { productId: "a", quantity: 3 }] });
    expect(r).toMatchObject({ status: "RESERVED", expireAt: now() + DEFAULT_TTL_MS, items: [{ productId: "a", quantity: 3 }, { productId: "b", quantity: 2 }] });
    expect(await repo.getStock("a")).toMatchObject({ available: 7, reserved: 3 });
    expect(repo.state.events.map((e) => e.type)).toEqual(["StockReserved"]);
    expect(kicks.n).toBe(1);

    await expect(inventory.reserve({ reservationId: "r2", orderId: "o2", items: [{ productId: "a", quantity: 1 }, { productId: "b", quantity: 9 }] })).rejects.toEqual(
      new InsufficientStockError("b", 9, 8),
    );
    // Nothing of r2 was applied, not even the covered item "a".
    expect(await repo.getStock("a")).toMatchObject({ available: 7, reserved: 3 });
    expect(await repo.getReservation("r2")).toBeUndefined();
  });

  it("is idempotent by reservation id and rejects a reuse with other items", async () => {
    const { repo, inventory } = setup();
    const cmd = { reservationId: "r1", orderId: "o1", items: [{ productId: "a", quantity: 2 }] };
    const first = await inventory.reserve(cmd);
    expect(await inventory.reserve(cmd)).toEqual(first);
    expect((await repo.getStock("a"))!.reserved).toBe(2);
    await expect(inventory.reserve({ ...cmd, items: [{ productId: "a", quantity: 3 }] })).rejects.toBeInstanceOf(ReservationConflictError);
    await expect(inventory.reserve({ ...cmd, orderId: "o2" })).rejects.toBeInstanceOf(ReservationConflictError);
  });

  it("validates ids, items and ttl", async () => {
    const { inventory } = setup();
    const ok = { reservationId: "r", orderId: "o", items: [{ productId: "a", quantity: 1 }] };
    const field = async (p: Promise<unknown>) => ((await p.catch((e: unknown) => e)) as ValidationError).field;
    expect(await field(inventory.reserve({ ...ok, reservationId: "" }))).toBe("reservation_id");
    expect(await field(inventory.reserve({ ...ok, orderId: "" }))).toBe("order_id");
    expect(await field(inventory.reserve({ ...ok, items: [] }))).toBe("items");
    expect(await field(inventory.reserve({ ...ok, items: [{ productId: "a", quantity: 0 }] }))).toBe("items[0].quantity");
    expect(await field(inventory.reserve({ ...ok, items: [{ productId: "a", quantity: 1 }, { productId: "a", quantity: 1 }] }))).toBe("items[1].product_id");
    expect(await field(inventory.reserve({ ...ok, ttlMs: -1 }))).toBe("ttl");
    expect(await field(inventory.reserve({ ...ok, ttlMs: MAX_TTL_MS + 1 }))).toBe("ttl");
    await expect(inventory.reserve({ ...ok, items: [{ productId: "zzz", quantity: 1 }] })).rejects.toBeInstanceOf(ProductNotFoundError);
    await expect(inventory.getStock("zzz")).rejects.toBeInstanceOf(ProductNotFoundError);
  });

  it("commits (idempotently), then releases a committed reservation back to available", async () => {
    const { repo, inventory } = setup();
    await inventory.reserve({ reservationId: "r1", orderId: "o1", items: [{ productId: "a", quantity: 4 }] });
    expect((await inventory.commit("r1")).status).toBe("COMMITTED");
    expect((await inventory.commit("r1")).status).toBe("COMMITTED");
    expect(await repo.getStock("a")).toMatchObject({ available: 6, reserved: 0, sold: 4 });
    expect((await inventory.release("r1", "order cancelled")).status).toBe("RELEASED");
    expect((await inventory.release("r1", "again")).status).toBe("RELEASED");
    expect(await repo.getStock("a")).toMatchObject({ available: 10, reserved: 0, sold: 0 });
    await expect(inventory.commit("r1")).rejects.toBeInstanceOf(ReservationReleasedError);
    await expect(inventory.commit("nope")).rejects.toBeInstanceOf(ReservationNotFoundError);
    await expect(inventory.release("nope", "")).rejects.toBeInstanceOf(ReservationNotFoundError);
  });

  it("expires due reservations in the sweep and refuses to commit them", async () => {
    const { repo, inventory, advance } = setup();
    await inventory.reserve({ reservationId: "short", orderId: "o1", items: [{ productId: "a", quantity: 5 }], ttlMs: 1_000 });
    await inventory.reserve({ reservationId: "long", orderId: "o2", items: [{ productId: "a", quantity: 1 }], ttlMs: 60_000 });
    advance(999);
    expect(await inventory.sweepExpired()).toBe(0);
    advance(1);
    expect(await inventory.sweepExpired()).toBe(1);
    expect(await inventory.sweepExpired()).toBe(0);
    expect(await repo.getStock("a")).toMatchObject({ available: 9, reserved: 1 });
    expect(repo.state.events.filter((e) => e.type === "ReservationExpired")).toEqual([
      { type: "ReservationExpired", reservationId: "short", orderId: "o1", items: [{ productId: "a", quantity: 5 }] },
    ]);
    await expect(inventory.commit("short")).rejects.toBeInstanceOf(ReservationExpiredError);
    expect((await inventory.release("short", "late")).status).toBe("EXPIRED");
  });

  it("expires an overdue reservation on commit even before the sweeper ran", async () => {
    const { repo, inventory, advance } = setup();
    await inventory.reserve({ reservationId: "r", orderId: "o", items: [{ productId: "a", quantity: 5 }], ttlMs: 1_000 });
    advance(1_000);
    await expect(inventory.commit("r")).rejects.toBeInstanceOf(ReservationExpiredError);
    expect((await inventory.getReservation("r")).status).toBe("EXPIRED");
    expect(await repo.getStock("a")).toMatchObject({ available: 10, reserved: 0 });
  });

  it("announces low stock once per dip and re-arms when stock recovers", async () => {
    const { repo, inventory } = setup({ a: 5 }, 2);
    const lows = () => repo.state.events.filter((e) => e.type === "StockLow");
    await inventory.reserve({ reservationId: "r1", orderId: "o", items: [{ productId: "a", quantity: 3 }] });
    expect(lows()).toEqual([{ type: "StockLow", productId: "a", available: 2, threshold: 2 }]);
    await inventory.reserve({ reservationId: "r2", orderId: "o", items: [{ productId: "a", quantity: 1 }] });
    expect(lows()).toHaveLength(1);
    await inventory.release("r1", "");
    await inventory.release("r2", "");
    await inventory.reserve({ reservationId: "r3", orderId: "o", items: [{ productId: "a", quantity: 4 }] });
    expect(lows()).toHaveLength(2);
  });

  it("keeps available + reserved + sold constant through any sequence", async () => {
    const { repo, inventory, advance } = setup({ a: 7, b: 3 });
    const ops: Array<() => Promise<unknown>> = [];
    for (let i = 0; i < 30; i++) {
      const id = `r${i % 10}`;
      ops.push(() => inventory.reserve({ reservationId: id, orderId: `o${i}`, items: [{ productId: i % 2 ? "a" : "b", quantity: 1 + (i % 3) }], ttlMs: 500 }));
      ops.push(() => (i % 3 ? inventory.commit(id) : inventory.release(id, "")));
      ops.push(async () => advance(200));
      ops.push(() => inventory.sweepExpired());
    }
    for (const op of ops) await op().catch(() => undefined);
    for (const s of repo.state.stock.values()) {
      expect(conserved(s)).toBe(true);
      expect(s.available).toBeGreaterThanOrEqual(0);
    }
  });

  it("streams the current stock, then each change, until aborted or closed", async () => {
    const { inventory } = setup();
    const abort = new AbortController();
    const stream = inventory.watchStock("a", abort.signal);
    expect((await stream.next()).value).toMatchObject({ available: 10 });
    const next = stream.next();
    await inventory.reserve({ reservationId: "r", orderId: "o", items: [{ productId: "a", quantity: 1 }] });
    expect((await next).value).toMatchObject({ available: 9, reserved: 1 });
    const ended = stream.next();
    abort.abort();
    expect((await ended).done).toBe(true);
    expect(inventory.changes.watchers).toBe(0);

    const other = inventory.watchStock("b", new AbortController().signal);
    await other.next();
    const pending = other.next();
    inventory.closeWatches();
    await expect(pending).rejects.toBeInstanceOf(WatchClosedError);
    expect(inventory.changes.watchers).toBe(0);
  });
});
