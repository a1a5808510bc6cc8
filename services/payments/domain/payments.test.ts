import { IdempotencyKeyReusedError, InvalidPaymentStateError, OperationRaceError, PaymentNotFoundError, RefundExceedsCapturedError, ValidationError } from "./errors.js";
import type { LedgerAccount, LedgerSums, Operation, OperationResult, Payment, PaymentEvent, PaymentRepository, PaymentUnitOfWork, StoredOperation } from "./model.js";
import { expectedBalances, Payments, type AuthorizeCommand } from "./payments.js";
import { luhnValid, SimulatedProcessor, TEST_CARDS } from "./processor.js";

interface Entry {
  txn: number;
  paymentId: string;
  account: LedgerAccount;
  currency: string;
  amountMinor: number;
}
interface State {
  payments: Map<string, Payment>;
  ops: Map<string, StoredOperation>;
  ledger: Entry[];
  events: PaymentEvent[];
  refunds: number;
}

/** In-memory repository: one transaction at a time on a copy that replaces the state on success. */
class FakeRepo implements PaymentRepository {
  state: State = { payments: new Map(), ops: new Map(), ledger: [], events: [], refunds: 0 };
  private queue: Promise<unknown> = Promise.resolve();
  private txn = 0;

  async getPayment(id: string) {
    return this.state.payments.get(id);
  }
  async findOperation(op: Operation, key: string) {
    return this.state.ops.get(`${op}/${key}`);
  }
  async allPayments() {
    return [...this.state.payments.values()];
  }
  async ledgerSums(): Promise<LedgerSums> {
    const group = <K>(key: (e: Entry) => K) => {
      const m = new Map<K, number>();
      for (const e of this.state.ledger) m.set(key(e), (m.get(key(e)) ?? 0) + e.amountMinor);
      return m;
    };
    return {
      totals: [...group((e) => e.currency)].map(([currency, sumMinor]) => ({ currency, sumMinor })),
      balances: [...group((e) => `${e.paymentId}|${e.account}`)].map(([k, sumMinor]) => {
        const [paymentId, account] = k.split("|");
        return { paymentId, account: account as LedgerAccount, sumMinor };
      }),
      unbalancedTransactions: [...group((e) => String(e.txn))].filter(([, s]) => s !== 0).map(([t]) => t),
    };
  }
  inTransaction<T>(fn: (uow: PaymentUnitOfWork) => Promise<T>): Promise<T> {
    const run = this.queue.then(async () => {
      const draft: State = {
        payments: new Map([...this.state.payments].map(([k, v]) => [k, { ...v }])),
        ops: new Map(this.state.ops),
        ledger: [...this.state.ledger],
        events: [...this.state.events],
        refunds: this.state.refunds,
      };
      const uow: PaymentUnitOfWork = {
        lockPayment: async (id) => draft.payments.get(id),
        insertPayment: async (p) => void draft.payments.set(p.id, { ...p }),
        updatePayment: async (p) => void draft.payments.set(p.id, { ...p }),
        insertRefund: async () => void draft.refunds++,
        post: async (paymentId, currency, postings) => {
          const txn = ++this.txn;
          for (const p of postings) draft.ledger.push({ txn, paymentId, currency, account: p.account, amountMinor: p.amountMinor });
        },
        recordEvent: async (e) => void draft.events.push(e),
        saveOperation: async (op, key, requestHash, result: OperationResult) => {
          if (draft.ops.has(`${op}/${key}`)) throw new OperationRaceError(key);
          draft.ops.set(`${op}/${key}`, { requestHash, result: JSON.parse(JSON.stringify(result)) as OperationResult });
        },
      };
      const result = await fn(uow);
      this.state = draft;
      return result;
    });
    this.queue = run.catch(() => undefined);
    return run;
  }
}

function setup() {
  const repo = new FakeRepo();
  const kicks = { n: 0 };
  const payments = new Payments(repo, new SimulatedProcessor({ slowDelayMs: 50 }), { onEventsCommitted: () => kicks.n++ });
  return { repo, payments, kicks };
}

const auth = (over: Partial<AuthorizeCommand> = {}): AuthorizeCommand => ({
  idempotencyKey: "k-auth",
  orderId: "o-1",
  customerId: "c-1",
  amount: { currency: "EUR", amountMinor: 5_000 },
  cardNumber: TEST_CARDS.APPROVED,
  ...over,
});

describe("payments domain", () => {
  it("knows the test cards and the Luhn check", () => {
    for (const card of Object.values(TEST_CARDS)) expect(luhnValid(card)).toBe(true);
    expect(luhnValid("4242424242424241")).toBe(false);
  });

  it("authorizes, declines and fails by test card, posting to the ledger only for holds", async () => {
    const { repo, payments } = setup();
    const ok = await payments.authorize(auth());
    expect(ok.payment).toMatchObject({ status: "AUTHORIZED", cardLast4: "4242", refundedMinor: 0 });
    expect(ok.payment.declineReason).toBeUndefined();
    const cases: Array<[string, string, string]> = [
      [TEST_CARDS.DECLINED_GENERIC, "DECLINED", "GENERIC"],
      [TEST_CARDS.DECLINED_INSUFFICIENT_FUNDS, "DECLINED", "INSUFFICIENT_FUNDS"],
      [TEST_CARDS.DECLINED_EXPIRED_CARD, "DECLINED", "EXPIRED_CARD"],
      [TEST_CARDS.PROCESSING_ERROR, "FAILED", "PROCESSING_ERROR"],
    ];
    for (const [card, status, reason] of cases) {
      const r = await payments.authorize(auth({ idempotencyKey: `k-${card}`, cardNumber: card }));
      expect(r.payment).toMatchObject({ status, declineReason: reason });
    }
    expect((await payments.authorize(auth({ idempotencyKey: "k-other", cardNumber: "5555555555554444" }))).payment.status).toBe("AUTHORIZED");
    expect(repo.state.events.map((e) => e.type)).toEqual(["PaymentAuthorized", "PaymentAuthorized"]);
    expect((await payments.ledgerBalance()).balanced).toBe(true);
  });

  it("validates keys, ids, amounts and cards", async () => {
    const { payments } = setup();
    const rejects = async (cmd: AuthorizeCommand) => (await payments.authorize(cmd).catch((e: unknown) => e)) as ValidationError;
    expect((await rejects(auth({ idempotencyKey: "" }))).field).toBe("idempotency_key");
    expect((await rejects(auth({ orderId: "" }))).field).toBe("order_id");
    expect((await rejects(auth({ customerId: "" }))).field).toBe("customer_id");
    expect(await rejects(auth({ amount: undefined }))).toMatchObject({ field: "amount", kind: "amount" });
    expect(await rejects(auth({ amount: { currency: "EUR", amountMinor: 0 } }))).toMatchObject({ field: "amount.amount_minor", kind: "amount" });
    expect(await rejects(auth({ amount: { currency: "EUR", amountMinor: -5 } }))).toMatchObject({ kind: "amount" });
    expect(await rejects(auth({ amount: { currency: "eur", amountMinor: 5 } }))).toMatchObject({ field: "amount.currency_code", kind: "amount" });
    expect(await rejects(auth({ amount: { currency: "", amountMinor: 5 } }))).toMatchObject({ kind: "amount" });
    expect(await rejects(auth({ cardNumber: "4242424242424241" }))).toMatchObject({ field: "card_number", kind: "card" });
    expect(await rejects(auth({ cardNumber: "4242-4242-4242-4242" }))).toMatchObject({ kind: "card" });
    expect(await rejects(auth({ cardNumber: "" }))).toMatchObject({ kind: "card" });
    await expect(payments.capture("k", "")).rejects.toBeInstanceOf(ValidationError);
    await expect(payments.getPayment("nope")).rejects.toBeInstanceOf(PaymentNotFoundError);
    await expect(payments.capture("k", "nope")).rejects.toBeInstanceOf(PaymentNotFoundError);
  });

  it("replays the first result for a repeated key and rejects the key with another request", async () => {
    const { repo, payments } = setup();
    const first = await payments.authorize(auth());
    expect(await payments.authorize(auth())).toEqual(first);
    expect(repo.state.payments.size).toBe(1);
    await expect(payments.authorize(auth({ amount: { currency: "EUR", amountMinor: 5_001 } }))).rejects.toBeInstanceOf(IdempotencyKeyReusedError);
    await expect(payments.authorize(auth({ cardNumber: TEST_CARDS.DECLINED_GENERIC }))).rejects.toBeInstanceOf(IdempotencyKeyReusedError);
    // Each method has its own key space.
    const captured = await payments.capture("k-auth", first.payment.id);
    expect(captured.payment.status).toBe("CAPTURED");
    // The replay is the first answer, not the payment's current state.
    expect((await payments.authorize(auth())).payment.status).toBe("AUTHORIZED");
  });

  it("executes once when the same key arrives concurrently", async () => {
    const { repo, payments } = setup();
    const results = await Promise.all(Array.from({ length: 5 }, () => payments.authorize(auth({ cardNumber: TEST_CARDS.SLOW }))));
    expect(new Set(results.map((r) => r.payment.id)).size).toBe(1);
    expect(repo.state.payments.size).toBe(1);
    expect(repo.state.events).toHaveLength(1);
  });

  it("enforces the status transitions", async () => {
    const { payments } = setup();
    const a = (await payments.authorize(auth())).payment;
    await expect(payments.refund({ idempotencyKey: "r0", paymentId: a.id, amount: undefined, reason: "" })).rejects.toBeInstanceOf(InvalidPaymentStateError);
    expect((await payments.capture("c1", a.id)).payment.status).toBe("CAPTURED");
    expect((await payments.capture("c2", a.id)).payment.status).toBe("CAPTURED");
    await expect(payments.void("v1", a.id)).rejects.toBeInstanceOf(InvalidPaymentStateError);

    const b = (await payments.authorize(auth({ idempotencyKey: "k-b" }))).payment;
    expect((await payments.void("v2", b.id)).payment.status).toBe("VOIDED");
    expect((await payments.void("v3", b.id)).payment.status).toBe("VOIDED");
    await expect(payments.capture("c3", b.id)).rejects.toBeInstanceOf(InvalidPaymentStateError);

    const d = (await payments.authorize(auth({ idempotencyKey: "k-d", cardNumber: TEST_CARDS.DECLINED_GENERIC }))).payment;
    await expect(payments.capture("c4", d.id)).rejects.toBeInstanceOf(InvalidPaymentStateError);
    await expect(payments.void("v4", d.id)).rejects.toBeInstanceOf(InvalidPaymentStateError);
  });

  it("refunds partially and fully, never more than captured, in the payment's currency", async () => {
    const { repo, payments } = setup();
    const p = (await payments.authorize(auth())).payment;
    await payments.capture("c", p.id);
    const eur = (amountMinor: number) => ({ currency: "EUR", amountMinor });
    await expect(payments.refund({ idempotencyKey: "r1", paymentId: p.id, amount: eur(5_001), reason: "" })).rejects.toEqual(new RefundExceedsCapturedError(p.id, 5_001, 5_000));
    await expect(payments.refund({ idempotencyKey: "r1", paymentId: p.id, amount: { currency: "USD", amountMinor: 1 }, reason: "" })).rejects.toMatchObject({
      kind: "currency-mismatch",
    });
    const part = await payments.refund({ idempotencyKey: "r1", paymentId: p.id, amount: eur(1_500), reason: "damaged" });
    expect(part.payment).toMatchObject({ status: "PARTIALLY_REFUNDED", refundedMinor: 1_500 });
    expect(part.refund?.amountMinor).toBe(1_500);
    expect(await payments.refund({ idempotencyKey: "r1", paymentId: p.id, amount: eur(1_500), reason: "damaged" })).toEqual(part);
    const rest = await payments.refund({ idempotencyKey: "r2", paymentId: p.id, amount: undefined, reason: "cancelled" });
    expect(rest.payment).toMatchObject({ status: "REFUNDED", refundedMinor: 5_000 });
    expect(rest.refund?.amountMinor).toBe(3_500);
    await expect(payments.refund({ idempotencyKey: "r3", paymentId: p.id, amount: undefined, reason: "" })).rejects.toBeInstanceOf(InvalidPaymentStateError);
    expect(repo.state.events.map((e) => e.type)).toEqual(["PaymentAuthorized", "PaymentCaptured", "PaymentRefunded", "PaymentRefunded"]);
    expect(repo.state.refunds).toBe(2);
  });

  it("keeps the ledger balanced and matching each payment's status", async () => {
    const { repo, payments } = setup();
    const ids: string[] = [];
    for (let i = 0; i < 6; i++) ids.push((await payments.authorize(auth({ idempotencyKey: `a${i}`, amount: { currency: i % 2 ? "EUR" : "USD", amountMinor: 1_000 + i } }))).payment.id);
    await payments.capture("c0", ids[0]);
    await payments.capture("c1", ids[1]);
    await payments.refund({ idempotencyKey: "r1", paymentId: ids[1], amount: { currency: "EUR", amountMinor: 10 }, reason: "" });
    await payments.capture("c2", ids[2]);
    await payments.refund({ idempotencyKey: "r2", paymentId: ids[2], amount: undefined, reason: "" });
    await payments.void("v3", ids[3]);
    const report = await payments.ledgerBalance();
    expect(report).toEqual({ balanced: true, totals: { EUR: 0, USD: 0 }, unbalancedTransactions: [], mismatchedPayments: [] });
    expect(expectedBalances((await repo.getPayment(ids[1]))!)).toEqual({ customer: -991, holds: 0, merchant: 991 });
    // A tampered entry is caught.
    repo.state.ledger.push({ txn: 999, paymentId: ids[4], account: "holds", currency: "USD", amountMinor: 1 });
    expect(await payments.ledgerBalance()).toMatchObject({ balanced: false, unbalancedTransactions: ["999"], mismatchedPayments: [ids[4]] });
  });

  it("aborts a slow authorization when the caller gives up, recording nothing", async () => {
    const repo = new FakeRepo();
    const payments = new Payments(repo, new SimulatedProcessor({ slowDelayMs: 60_000 }));
    const abort = new AbortController();
    const pending = payments.authorize(auth({ cardNumber: TEST_CARDS.SLOW }), abort.signal);
    abort.abort(new Error("deadline"));
    await expect(pending).rejects.toThrow("deadline");
    expect(repo.state.payments.size).toBe(0);
  });
});
