import { sql } from "kysely";
import { openDatabase, type Database } from "../../../mesh/db/index.js";
import { createScratchDatabase, DIALECTS, type ScratchDatabase } from "../../../mesh/db/testing.js";
import { OUTBOX_TABLE } from "../../../mesh/events/index.js";
import { InsufficientStockError } from "../domain/errors.js";
import { Inventory } from "../domain/inventory.js";
import { SqlInventoryRepository } from "./inventory-repository.js";
import { migrateInventory } from "./migrations.js";
import { SEED_STOCK } from "./seed.js";

describe.each(DIALECTS)("inventory on %s", (dialect) => {
  let scratch: ScratchDatabase;
  let database: Database;
  let repo: SqlInventoryRepository;
  let inventory: Inventory;
  let now = Date.now();

  beforeAll(async () => {
    scratch = await createScratchDatabase(dialect);
    database = await openDatabase(scratch.url);
    await migrateInventory(database);
    await migrateInventory(database);
    repo = new SqlInventoryRepository(database);
    inventory = new Inventory(repo, { lowStockThreshold: 5, clock: () => now });
  });
  afterAll(async () => {
    await database?.close();
    await scratch?.drop();
  });

  const outbox = async () =>
    (await database.db.selectFrom(OUTBOX_TABLE).select(["type", "subject"]).orderBy("created_at").execute()) as Array<{ type: string; subject: string }>;
  const outboxCount = async (type: string) => (await outbox()).filter((r) => r.type === type).length;

  it("seeds the catalog's product ids once, with conserved stock", async () => {
    const all = await repo.allStock();
    expect(all).toHaveLength(SEED_STOCK.length);
    expect(all.map((s) => s.productId)).toContain("prod-040");
    expect(await repo.getStock("prod-016")).toMatchObject({ available: 0, reserved: 0, sold: 0, received: 0 });
    for (const s of all) expect(s.available + s.reserved + s.sold).toBe(s.received);
  });

  it("enforces conservation and non-negative buckets in the database itself", async () => {
    // The error code of a CHECK violation: SQLITE_CONSTRAINT_CHECK or PostgreSQL's 23514.
    const violation = (q: { execute(db: Database["db"]): Promise<unknown> }) =>
      q.execute(database.db).then(
        () => "no error",
        (e: { code?: unknown }) => String(e?.code),
      );
    const checkFailed = dialect === "sqlite" ? "SQLITE_CONSTRAINT_CHECK" : "23514";
    expect(await violation(sql`update stock set available = available + 1 where product_id = 'prod-001'`)).toBe(checkFailed);
    expect(await violation(sql`update stock set available = -1, received = received - available - 1 where product_id = 'prod-001'`)).toBe(checkFailed);
  });

  it("reserves, commits and releases with the events in the same transaction", async () => {
    const r = await inventory.reserve({
      reservationId: "res-1",
      orderId: "ord-1",
      items: [{ productId: "prod-002", quantity: 2 }, { productId: "prod-001", quantity: 1 }],
    });
    expect(r.items.map((i) => i.productId)).toEqual(["prod-001", "prod-002"]);
    expect(await repo.getReservation("res-1")).toEqual(r);
    expect(await repo.getStock("prod-002")).toMatchObject({ available: 98, reserved: 2, sold: 0 });
    expect(await outbox()).toEqual([{ type: "inventory.v1.StockReserved", subject: "inventory.stock_reserved" }]);

    await inventory.commit("res-1");
    expect(await repo.getStock("prod-002")).toMatchObject({ available: 98, reserved: 0, sold: 2 });
    await inventory.release("res-1", "order cancelled after payment");
    expect(await repo.getStock("prod-002")).toMatchObject({ available: 100, reserved: 0, sold: 0, received: 100 });
    expect((await repo.getReservation("res-1"))?.status).toBe("RELEASED");
  });

  it("rolls back every item and writes no event when one item is short", async () => {
    const before = (await outbox()).length;
    await expect(
      inventory.reserve({ reservationId: "res-short", orderId: "o", items: [{ productId: "prod-003", quantity: 1 }, { productId: "prod-016", quantity: 1 }] }),
    ).rejects.toEqual(new InsufficientStockError("prod-016", 1, 0));
    expect(await repo.getStock("prod-003")).toMatchObject({ available: 100, reserved: 0 });
    expect(await repo.getReservation("res-short")).toBeUndefined();
    expect((await outbox()).length).toBe(before);
  });

  it("lets exactly the available units win among 20 concurrent reservations", async () => {
    const results = await Promise.allSettled(
      Array.from({ length: 20 }, (_, i) => inventory.reserve({ reservationId: `race-${i}`, orderId: `o-${i}`, items: [{ productId: "prod-005", quantity: 1 }] })),
    );
    expect(results.filter((r) => r.status === "fulfilled")).toHaveLength(3);
    const failures = results.filter((r): r is PromiseRejectedResult => r.status === "rejected");
    expect(failures.every((f) => f.reason instanceof InsufficientStockError)).toBe(true);
    expect(await repo.getStock("prod-005")).toMatchObject({ available: 0, reserved: 3, received: 3 });
    // prod-005 starts at 3 <= threshold 5: announced once, at the first dip.
    expect(await outboxCount("inventory.v1.StockLow")).toBe(1);
  });

  it("creates one reservation when the same id is reserved 10 times at once", async () => {
    const cmd = { reservationId: "dup", orderId: "o-dup", items: [{ productId: "prod-006", quantity: 4 }] };
    const results = await Promise.all(Array.from({ length: 10 }, () => inventory.reserve(cmd)));
    expect(new Set(results.map((r) => r.createdAt)).size).toBe(1);
    expect(await repo.getStock("prod-006")).toMatchObject({ available: 96, reserved: 4 });
  });

  it("never deadlocks reservations that name the same products in opposite orders", async () => {
    const calls = Array.from({ length: 10 }, (_, i) =>
      inventory.reserve({
        reservationId: `x-${i}`,
        orderId: "o",
        items: i % 2 ? [{ productId: "prod-007", quantity: 1 }, { productId: "prod-008", quantity: 1 }] : [{ productId: "prod-008", quantity: 1 }, { productId: "prod-007", quantity: 1 }],
      }),
    );
    await Promise.all(calls);
    expect(await repo.getStock("prod-007")).toMatchObject({ available: 90, reserved: 10 });
  });

  it("sweeps expired reservations back to available and records ReservationExpired", async () => {
    await inventory.reserve({ reservationId: "exp-1", orderId: "o-exp", items: [{ productId: "prod-009", quantity: 7 }], ttlMs: 1_000 });
    expect(await repo.dueReservations(now + 999, 10)).toEqual([]);
    now += 1_000;
    expect(await repo.dueReservations(now, 10)).toEqual(["exp-1"]);
    expect(await inventory.sweepExpired(now)).toBe(1);
    expect(await repo.getStock("prod-009")).toMatchObject({ available: 100, reserved: 0 });
    expect((await repo.getReservation("exp-1"))?.status).toBe("EXPIRED");
    expect(await outboxCount("inventory.v1.ReservationExpired")).toBe(1);
  });

  it("keeps every product conserved after all of the above", async () => {
    for (const s of await repo.allStock()) {
      expect(s.available + s.reserved + s.sold).toBe(s.received);
      expect(s.received).toBe(SEED_STOCK.find((x) => x.productId === s.productId)!.units);
    }
  });
});
