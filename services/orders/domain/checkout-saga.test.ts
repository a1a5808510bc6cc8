import { randomUUID } from "node:crypto";
import { openDatabase, type Database } from "../../../mesh/db/index.js";
import { createScratchDatabase, DIALECTS, type ScratchDatabase } from "../../../mesh/db/testing.js";
import { currentDeadline, runWithDeadline } from "../../../mesh/deadline/index.js";
import { waitFor } from "../../../mesh/infra/index.js";
import { migrateOrders } from "../data/migrations.js";
import { SqlOrderRepository } from "../data/order-repository.js";
import { MemoryLogger } from "../testing/harness.js";
import { OrderChanges } from "./changes.js";
import { CheckoutSaga, type CheckoutSagaOptions, type SagaOutcome } from "./checkout-saga.js";
import type { Order, SagaState } from "./order.js";
import type { CheckoutPorts, PaymentInfo } from "./ports.js";

/** Ports that always succeed, recording each call with the ambient deadline it saw. */
function recordingPorts() {
  const calls: { op: string; deadline: number | undefined }[] = [];
  const payments = new Map<string, PaymentInfo>();
  const rec = (op: string) => calls.push({ op, deadline: currentDeadline() });
  const ports: CheckoutPorts = {
    async getProduct(id) {
      rec("getProduct");
      return { id, name: id, currency: "EUR", priceMinor: 100, active: true };
    },
    async reserve() {
      rec("reserve");
    },
    async commitReservation() {
      rec("commit");
    },
    async releaseReservation() {
      rec("release");
      return "released";
    },
    async authorize(req) {
      rec("authorize");
      const p: PaymentInfo = { id: `pay-${req.orderId}`, status: "AUTHORIZED", declineReason: "" };
      payments.set(p.id, p);
      return p;
    },
    async capture(_key, id) {
      rec("capture");
      payments.get(id)!.status = "CAPTURED";
      return payments.get(id)!;
    },
    async void(_key, id) {
      rec("void");
      payments.get(id)!.status = "VOIDED";
      return payments.get(id)!;
    },
    async refund(_key, id) {
      rec("refund");
      payments.get(id)!.status = "REFUNDED";
      return payments.get(id)!;
    },
    async getPayment(id) {
      rec("getPayment");
      return payments.get(id);
    },
  };
  return { ports, calls, payments, ops: () => calls.map((c) => c.op).filter((o) => o !== "getPayment" && o !== "getProduct") };
}

function order(saga: SagaState, over: Partial<Order> = {}): Order {
  const now = Date.now();
  return {
    id: randomUUID(),
    customerId: "c-1",
    idempotencyKey: randomUUID(),
    requestHash: "h",
    currency: "EUR",
    items: [{ productId: "p-1", name: "p-1", quantity: 1, unitPriceMinor: 100, expectedUnitPriceMinor: null }],
    totalMinor: 100,
    status: "PENDING",
    failure: null,
    cancelReason: "",
    paymentId: "",
    reservationId: "",
    saga,
    traceparent: "",
    version: 1,
    createdAt: now,
    updatedAt: now,
    ...over,
  };
}

const TIMING = { leaseMs: 2_000, sweepIntervalMs: 50, forwardBackoff: { initialMs: 5, maxMs: 20 }, compensationBackoff: { initialMs: 5, maxMs: 20 } };

describe.each(DIALECTS)("CheckoutSaga on %s", (dialect) => {
  let scratch: ScratchDatabase;
  let database: Database;
  let repo: SqlOrderRepository;
  const sagas: CheckoutSaga[] = [];

  function saga(ports: CheckoutPorts, owner = `o-${randomUUID()}`, extra: Partial<CheckoutSagaOptions> = {}): CheckoutSaga {
    const s = new CheckoutSaga({ repo, ports, changes: new OrderChanges(), owner, logger: new MemoryLogger(), timing: TIMING, ...extra });
    sagas.push(s);
    return s;
  }

  beforeEach(async () => {
    scratch = await createScratchDatabase(dialect);
    database = await openDatabase(scratch.url);
    await migrateOrders(database);
    repo = new SqlOrderRepository(database);
  });
  afterEach(async () => {
    for (const s of sagas.splice(0)) await s.stop();
    await database.close();
    await scratch.drop();
  });

  test("a drive started inside a request's deadline scope does not inherit it", async () => {
    const { ports, calls, ops } = recordingPorts();
    const s = saga(ports);
    const o = order({ phase: "forward", steps: {} });
    await repo.insert(o, s.owner, s.leaseUntil());
    s.rememberCard(o.id, "4242424242424242");
    // An already-expired inbound deadline: inherited, every call would fail at once.
    await runWithDeadline(Date.now() - 1, undefined, () => s.drive(o.id));
    expect((await repo.get(o.id))?.status).toBe("CONFIRMED");
    expect(ops()).toEqual(["reserve", "authorize", "commit", "capture"]);
    expect(calls.every((c) => c.deadline === undefined)).toBe(true);
  });

  test("resumes unfinished sagas of a dead owner: forward past commit, compensation without the card", async () => {
    const { ports, ops, payments } = recordingPorts();
    payments.set("pay-x", { id: "pay-x", status: "AUTHORIZED", declineReason: "" });
    const atCommit = order({ phase: "forward", steps: { validate: "done", reserve: "done", authorize: "done", commit: "intent" } }, { paymentId: "pay-x" });
    const atAuthorize = order({ phase: "forward", steps: { validate: "done", reserve: "done", authorize: "intent" } });
    const expired = Date.now() - 1;
    await repo.insert(atCommit, "dead", expired);
    await repo.insert(atAuthorize, "dead", expired);
    saga(ports).start();
    await waitFor(async () => (await repo.get(atCommit.id))?.status === "CONFIRMED" && (await repo.get(atAuthorize.id))?.status === "FAILED", {
      what: "both sagas finished",
    });
    expect((await repo.get(atAuthorize.id))?.failure).toMatchObject({ reason: "PAYMENT_FAILED", metadata: { cause: "interrupted" } });
    expect(ops().sort()).toEqual(["capture", "commit", "release"]);
  });

  test("every drive runs inside its order's scope (the stored trace), and each finished saga reports its outcome once", async () => {
    const { ports, calls } = recordingPorts();
    const scopes: { orderId: string; traceparent: string }[] = [];
    const outcomes: [string, SagaOutcome][] = [];
    let inScope = false;
    const s = saga(ports, undefined, {
      driveScope: async (o, drive) => {
        scopes.push({ orderId: o.id, traceparent: o.traceparent });
        inScope = true;
        try {
          await drive();
        } finally {
          inScope = false;
        }
      },
      onOutcome: (outcome, o) => {
        expect(inScope).toBe(true);
        outcomes.push([o.id, outcome]);
      },
    });
    const traceparent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";
    const placed = order({ phase: "forward", steps: {} }, { traceparent });
    await repo.insert(placed, s.owner, s.leaseUntil());
    s.rememberCard(placed.id, "4242424242424242");
    const resumed = order({ phase: "forward", steps: { validate: "done", reserve: "done", authorize: "intent" } });
    await repo.insert(resumed, "dead", Date.now() - 1);
    const before = calls.length;
    await s.drive(placed.id);
    expect(calls.length).toBeGreaterThan(before);
    s.start();
    await waitFor(async () => (await repo.get(resumed.id))?.status === "FAILED", { what: "the resumed saga to fail" });
    await s.drive(placed.id); // finished: not claimed, no second outcome
    expect(scopes).toEqual([
      { orderId: placed.id, traceparent },
      { orderId: resumed.id, traceparent: "" },
    ]);
    expect(outcomes).toEqual([
      [placed.id, "CONFIRMED"],
      [resumed.id, "FAILED"],
    ]);
  });

  test("a live owner's saga is not driven by another process", async () => {
    const { ports, ops } = recordingPorts();
    const o = order({ phase: "forward", steps: { validate: "done" } });
    await repo.insert(o, "alive", Date.now() + 60_000);
    await saga(ports).drive(o.id);
    expect(ops()).toEqual([]);
    expect((await repo.get(o.id))?.saga.phase).toBe("forward");
  });

  test("a late authorization of a failed order is voided by the sweep", async () => {
    const { ports, ops, payments } = recordingPorts();
    const failed = order({ phase: "finished", steps: {} }, { status: "FAILED" });
    await repo.insert(failed, "x", 0);
    payments.set("pay-late", { id: "pay-late", status: "AUTHORIZED", declineReason: "" });
    await repo.linkPayment(failed.id, "pay-late");
    saga(ports).start();
    await waitFor(async () => (await repo.findOrphanPayments(10)).length === 0, { what: "orphan settled" });
    expect(ops()).toEqual(["void"]);
    expect(payments.get("pay-late")?.status).toBe("VOIDED");
  });
});
