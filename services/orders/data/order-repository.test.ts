import { randomUUID } from "node:crypto";
import { openDatabase, type Database } from "../../../mesh/db/index.js";
import { createScratchDatabase, DIALECTS, type ScratchDatabase } from "../../../mesh/db/testing.js";
import type { Order } from "../domain/order.js";
import { outboxTypes } from "../testing/assertions.js";
import { migrateOrders } from "./migrations.js";
import { SqlOrderRepository } from "./order-repository.js";

function newOrder(over: Partial<Order> = {}): Order {
  const now = Date.now();
  return {
    id: randomUUID(),
    customerId: "c-1",
    idempotencyKey: randomUUID(),
    requestHash: "h",
    currency: "EUR",
    items: [{ productId: "p-1", name: "", quantity: 2, unitPriceMinor: 0, expectedUnitPriceMinor: 1999 }],
    totalMinor: 0,
    status: "PENDING",
    failure: null,
    cancelReason: "",
    paymentId: "",
    reservationId: "",
    saga: { phase: "forward", steps: {} },
    traceparent: "",
    version: 1,
    createdAt: now,
    updatedAt: now,
    ...over,
  };
}

describe.each(DIALECTS)("SqlOrderRepository on %s", (dialect) => {
  let scratch: ScratchDatabase;
  let database: Database;
  let repo: SqlOrderRepository;
  let kicks = 0;

  beforeEach(async () => {
    scratch = await createScratchDatabase(dialect);
    database = await openDatabase(scratch.url);
    await migrateOrders(database);
    kicks = 0;
    repo = new SqlOrderRepository(database, { onEventsCommitted: () => kicks++ });
  });
  afterEach(async () => {
    await database.close();
    await scratch.drop();
  });

  test("round-trips an order, money as an exact integer beyond 2^31", async () => {
    const order = newOrder({ totalMinor: 9_007_199_254_740_000, failure: { reason: "OUT_OF_STOCK", retryable: false, message: "m", metadata: { a: "1" } } });
    expect(await repo.insert(order, "me", Date.now() + 1_000)).toBe(true);
    expect(await repo.get(order.id)).toEqual(order);
    expect(await repo.getByIdempotencyKey("c-1", order.idempotencyKey)).toEqual(order);
    expect(await repo.get("nope")).toBeUndefined();
  });

  test("one order per (customer, idempotency key), also when 10 inserts race", async () => {
    const key = randomUUID();
    const results = await Promise.all(Array.from({ length: 10 }, () => repo.insert(newOrder({ idempotencyKey: key }), "me", 0)));
    expect(results.filter(Boolean)).toHaveLength(1);
    expect(await repo.insert(newOrder({ idempotencyKey: key, customerId: "c-2" }), "me", 0)).toBe(true);
  });

  test("lists a customer's orders newest first, continuing after a cursor", async () => {
    const base = Date.now();
    const orders = [0, 1, 2, 2].map((dt, i) => newOrder({ createdAt: base + dt, id: `o-${i}` }));
    for (const o of orders) await repo.insert(o, "me", 0);
    await repo.insert(newOrder({ customerId: "c-2" }), "me", 0);
    const all = await repo.listByCustomer("c-1", undefined, 10);
    expect(all.map((o) => o.id)).toEqual(["o-3", "o-2", "o-1", "o-0"]);
    const rest = await repo.listByCustomer("c-1", { createdAt: all[1].createdAt, id: all[1].id }, 10);
    expect(rest.map((o) => o.id)).toEqual(["o-1", "o-0"]);
  });

  test("saga writes are fenced by the lease owner and write their events in the same transaction", async () => {
    const order = newOrder();
    await repo.insert(order, "a", Date.now() + 60_000);
    expect(await repo.claim(order.id, "b", Date.now() + 60_000, Date.now())).toBeUndefined();
    expect(await repo.update(order.id, "b", { saga: { phase: "forward", steps: { validate: "done" } } })).toBeUndefined();
    const updated = await repo.update(order.id, "a", { saga: { phase: "forward", steps: { validate: "done" } }, totalMinor: 3998, events: ["placed"] });
    expect(updated).toMatchObject({ totalMinor: 3998, version: 2 });
    expect(kicks).toBe(1);
    expect(await outboxTypes(database, order.id)).toEqual(["orders.v1.OrderPlaced"]);
    // An expired lease can be taken over; the old owner is then fenced off.
    await repo.renewLeases("a", [order.id], Date.now() - 1);
    expect(await repo.findClaimable(Date.now(), 10)).toEqual([order.id]);
    expect(await repo.claim(order.id, "b", Date.now() + 60_000, Date.now())).toBeDefined();
    expect(await repo.update(order.id, "a", { saga: { phase: "finished", steps: {} }, status: "CONFIRMED", events: ["confirmed"] })).toBeUndefined();
    expect(await outboxTypes(database, order.id)).toEqual(["orders.v1.OrderPlaced"]);
    // Finishing frees the lease: nothing left to claim.
    await repo.update(order.id, "b", { saga: { phase: "finished", steps: {} }, status: "CONFIRMED" });
    expect(await repo.findClaimable(Date.now(), 10)).toEqual([]);
    expect(await repo.claim(order.id, "c", Date.now() + 1, Date.now())).toBeUndefined();
  });

  test("releaseLease hands a saga over at once", async () => {
    const order = newOrder();
    await repo.insert(order, "a", Date.now() + 60_000);
    expect(await repo.findClaimable(Date.now(), 10)).toEqual([]);
    await repo.releaseLease(order.id, "a");
    expect(await repo.findClaimable(Date.now(), 10)).toEqual([order.id]);
  });

  test("deleteUnplaced removes only an order whose checkout never started", async () => {
    const unplaced = newOrder({ saga: { phase: "forward", steps: { validate: "intent" } } });
    const placed = newOrder({ saga: { phase: "forward", steps: { validate: "done" } } });
    await repo.insert(unplaced, "a", 0);
    await repo.insert(placed, "a", 0);
    expect(await repo.deleteUnplaced(placed.id, "a")).toBe(false);
    expect(await repo.deleteUnplaced(unplaced.id, "b")).toBe(false);
    expect(await repo.deleteUnplaced(unplaced.id, "a")).toBe(true);
    expect(await repo.get(unplaced.id)).toBeUndefined();
  });

  test("requestCancel: flags a PENDING checkout, starts compensating a CONFIRMED order, leaves others", async () => {
    const pending = newOrder();
    await repo.insert(pending, "a", 0);
    await repo.requestCancel(pending.id, "r1");
    await repo.requestCancel(pending.id, "r2");
    expect(await repo.cancelRequest(pending.id)).toBe("r1");
    // The owner's saga writes do not overwrite the request.
    await repo.update(pending.id, "a", { saga: { phase: "forward", steps: { validate: "done" } } });
    expect(await repo.cancelRequest(pending.id)).toBe("r1");

    const confirmed = newOrder({ status: "CONFIRMED", saga: { phase: "finished", steps: { capture: "done" } } });
    await repo.insert(confirmed, "a", 0);
    const after = await repo.requestCancel(confirmed.id, "changed mind");
    expect(after?.saga).toEqual({ phase: "compensating", steps: { capture: "done" }, outcome: { status: "CANCELLED", reason: "changed mind", previousStatus: "CONFIRMED" } });
    expect(await repo.findClaimable(Date.now(), 10)).toContain(confirmed.id);

    const failed = newOrder({ status: "FAILED", saga: { phase: "finished", steps: {} } });
    await repo.insert(failed, "a", 0);
    expect((await repo.requestCancel(failed.id, "x"))?.version).toBe(1);
    expect(await repo.requestCancel("nope", "x")).toBeUndefined();
  });

  test("markShipped moves only a finished CONFIRMED order", async () => {
    const confirmed = newOrder({ status: "CONFIRMED", saga: { phase: "finished", steps: {} } });
    const pending = newOrder();
    await repo.insert(confirmed, "a", 0);
    await repo.insert(pending, "a", 0);
    expect((await repo.markShipped(confirmed.id))?.status).toBe("SHIPPED");
    expect(await repo.markShipped(pending.id)).toBeUndefined();
  });

  test("payments linked to orders: unknown orders ignored, orphans are those a finished order does not keep", async () => {
    const kept = newOrder({ status: "CONFIRMED", paymentId: "pay-1", saga: { phase: "finished", steps: {} } });
    const failed = newOrder({ status: "FAILED", saga: { phase: "finished", steps: {} } });
    const running = newOrder();
    for (const o of [kept, failed, running]) await repo.insert(o, "a", 0);
    await repo.linkPayment(kept.id, "pay-1");
    await repo.linkPayment(kept.id, "pay-1");
    await repo.linkPayment(kept.id, "pay-2");
    await repo.linkPayment(failed.id, "pay-3");
    await repo.linkPayment(running.id, "pay-4");
    await repo.linkPayment("unknown-order", "pay-5");
    expect(await repo.unsettledPayments(kept.id)).toEqual(["pay-1", "pay-2"]);
    const orphans = await repo.findOrphanPayments(10);
    expect(orphans.map((o) => o.paymentId).sort()).toEqual(["pay-2", "pay-3"]);
    await repo.markPaymentSettled(failed.id, "pay-3");
    expect((await repo.findOrphanPayments(10)).map((o) => o.paymentId)).toEqual(["pay-2"]);
  });
});
