import { openDatabase, type Database } from "../../../mesh/db/index.js";
import { createScratchDatabase, DIALECTS, type ScratchDatabase } from "../../../mesh/db/testing.js";
import { OUTBOX_TABLE } from "../../../mesh/events/index.js";
import { InvalidPaymentStateError, RefundExceedsCapturedError } from "../domain/errors.js";
import { Payments, type AuthorizeCommand } from "../domain/payments.js";
import { SimulatedProcessor, TEST_CARDS } from "../domain/processor.js";
import { migratePayments } from "./migrations.js";
import { SqlPaymentRepository } from "./payment-repository.js";

const auth = (key: string, amountMinor = 5_000, over: Partial<AuthorizeCommand> = {}): AuthorizeCommand => ({
  idempotencyKey: key,
  orderId: `o-${key}`,
  customerId: "c-1",
  amount: { currency: "EUR", amountMinor },
  cardNumber: TEST_CARDS.APPROVED,
  ...over,
});

describe.each(DIALECTS)("payments on %s", (dialect) => {
  let scratch: ScratchDatabase;
  let database: Database;
  let repo: SqlPaymentRepository;
  let payments: Payments;

  beforeAll(async () => {
    scratch = await createScratchDatabase(dialect);
    database = await openDatabase(scratch.url);
    await migratePayments(database);
    await migratePayments(database);
    repo = new SqlPaymentRepository(database);
    payments = new Payments(repo, new SimulatedProcessor({ slowDelayMs: 20 }));
  });
  afterAll(async () => {
    await database?.close();
    await scratch?.drop();
  });

  const eventTypes = async () =>
    ((await database.db.selectFrom(OUTBOX_TABLE).select(["type"]).orderBy("created_at").execute()) as Array<{ type: string }>).map((r) => r.type);

  it("stores payments with their ledger, refunds and events in one transaction each", async () => {
    const a = (await payments.authorize(auth("life", 5_000))).payment;
    expect(await repo.getPayment(a.id)).toEqual(a);
    await payments.capture("life-c", a.id);
    await payments.refund({ idempotencyKey: "life-r1", paymentId: a.id, amount: { currency: "EUR", amountMinor: 1_200 }, reason: "scratched" });
    const last = await payments.refund({ idempotencyKey: "life-r2", paymentId: a.id, amount: undefined, reason: "returned" });
    expect(last.payment).toMatchObject({ status: "REFUNDED", refundedMinor: 5_000 });
    expect(last.refund?.amountMinor).toBe(3_800);
    const b = (await payments.authorize(auth("life-b", 700))).payment;
    await payments.void("life-v", b.id);
    expect(await eventTypes()).toEqual([
      "payments.v1.PaymentAuthorized",
      "payments.v1.PaymentCaptured",
      "payments.v1.PaymentRefunded",
      "payments.v1.PaymentRefunded",
      "payments.v1.PaymentAuthorized",
      "payments.v1.PaymentVoided",
    ]);
    const refunds = await database.db.selectFrom("refunds").select(["amount_minor"]).where("payment_id", "=", a.id).execute();
    expect(refunds.map((r) => Number(r.amount_minor)).sort()).toEqual([1_200, 3_800]);
    expect(await payments.ledgerBalance()).toEqual({ balanced: true, totals: { EUR: 0 }, unbalancedTransactions: [], mismatchedPayments: [] });
  });

  it("replays stored results exactly, across the JSON round trip", async () => {
    const first = await payments.authorize(auth("replay", 999, { cardNumber: TEST_CARDS.DECLINED_INSUFFICIENT_FUNDS }));
    expect(first.payment).toMatchObject({ status: "DECLINED", declineReason: "INSUFFICIENT_FUNDS" });
    expect(await payments.authorize(auth("replay", 999, { cardNumber: TEST_CARDS.DECLINED_INSUFFICIENT_FUNDS }))).toEqual(first);
  });

  it("executes a key once among 10 concurrent calls", async () => {
    const results = await Promise.all(Array.from({ length: 10 }, () => payments.authorize(auth("conc", 100, { cardNumber: TEST_CARDS.SLOW }))));
    expect(new Set(results.map((r) => r.payment.id)).size).toBe(1);
    const rows = await database.db.selectFrom("payments").select("id").where("order_id", "=", "o-conc").execute();
    expect(rows).toHaveLength(1);
  });

  it("captures once when 10 different keys capture the same payment at once", async () => {
    const p = (await payments.authorize(auth("multi", 2_000))).payment;
    const results = await Promise.all(Array.from({ length: 10 }, (_, i) => payments.capture(`multi-c${i}`, p.id)));
    expect(results.every((r) => r.payment.status === "CAPTURED")).toBe(true);
    expect((await eventTypes()).filter((t) => t === "payments.v1.PaymentCaptured")).toHaveLength(2);
    expect((await payments.ledgerBalance()).balanced).toBe(true);
  });

  it("never refunds more than captured under 10 concurrent refunds", async () => {
    const p = (await payments.authorize(auth("refunds", 500))).payment;
    await payments.capture("refunds-c", p.id);
    const results = await Promise.allSettled(
      Array.from({ length: 10 }, (_, i) => payments.refund({ idempotencyKey: `refunds-r${i}`, paymentId: p.id, amount: { currency: "EUR", amountMinor: 100 }, reason: "" })),
    );
    expect(results.filter((r) => r.status === "fulfilled")).toHaveLength(5);
    // Once fully refunded the payment is REFUNDED, so later refunds fail on its state instead.
    for (const r of results) {
      if (r.status === "rejected") expect(r.reason instanceof RefundExceedsCapturedError || r.reason instanceof InvalidPaymentStateError).toBe(true);
    }
    expect(await repo.getPayment(p.id)).toMatchObject({ status: "REFUNDED", refundedMinor: 500 });
    expect((await payments.ledgerBalance()).balanced).toBe(true);
  });

  it("detects a ledger entry that breaks the balance", async () => {
    const p = (await payments.authorize(auth("tamper", 300))).payment;
    await database.db
      .insertInto("ledger_entries")
      .values({ id: "bad-1", txn_id: "bad-txn", payment_id: p.id, account: "holds", currency: "EUR", amount_minor: 1, created_at: Date.now() })
      .execute();
    expect(await payments.ledgerBalance()).toEqual({ balanced: false, totals: { EUR: 1 }, unbalancedTransactions: ["bad-txn"], mismatchedPayments: [p.id] });
    await database.db.deleteFrom("ledger_entries").where("id", "=", "bad-1").execute();
  });

  it("refuses a refunded amount above the payment's amount in the schema itself", async () => {
    const p = (await payments.authorize(auth("schema", 100))).payment;
    // Compared by error code: better-sqlite3's errors are not always Error instances in jest's realm.
    const code = await database.db
      .updateTable("payments")
      .set({ refunded_minor: 101 })
      .where("id", "=", p.id)
      .execute()
      .then(
        () => "no error",
        (e: { code?: unknown }) => String(e?.code),
      );
    expect(code).toBe(dialect === "sqlite" ? "SQLITE_CONSTRAINT_CHECK" : "23514");
  });
});
