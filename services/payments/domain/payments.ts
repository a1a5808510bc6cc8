import { createHash, randomUUID } from "node:crypto";
import {
  IdempotencyKeyReusedError,
  InvalidPaymentStateError,
  OperationRaceError,
  PaymentNotFoundError,
  RefundExceedsCapturedError,
  ValidationError,
} from "./errors.js";
import type { LedgerAccount, Money, Operation, OperationResult, Payment, PaymentRepository, PaymentUnitOfWork, Posting, StoredOperation } from "./model.js";
import { luhnValid, type CardProcessor } from "./processor.js";

// 255 characters: room for any UUID or composed key ("order-…:capture"), bounded for the index.
const KEY_MAX_LENGTH = 255;
// 128 characters: ids are UUIDs or short slugs; anything longer is a client bug.
const ID_MAX_LENGTH = 128;
// 12-19 digits: the ISO/IEC 7812 range of card number lengths.
const CARD_MIN_DIGITS = 12;
const CARD_MAX_DIGITS = 19;
// 1,000 characters: a refund reason is a short note for statements and audits.
const REASON_MAX_LENGTH = 1_000;

/** Options of {@link Payments}. */
export interface PaymentsOptions {
  /** Epoch ms now; injectable for tests. */
  clock?: () => number;
  /** Runs after a transaction that recorded events committed, e.g. `relay.kick()`. */
  onEventsCommitted?: () => void;
}

/** What Authorize asks for. */
export interface AuthorizeCommand {
  idempotencyKey: string;
  orderId: string;
  customerId: string;
  amount: Money | undefined;
  cardNumber: string;
}

/** What Refund asks for; `amount` undefined means everything not yet refunded. */
export interface RefundCommand {
  idempotencyKey: string;
  paymentId: string;
  amount: Money | undefined;
  reason: string;
}

/** Is the ledger consistent? See {@link Payments.ledgerBalance}. */
export interface LedgerReport {
  /** True when every check below passed. */
  balanced: boolean;
  /** Sum of all entries per currency; each is 0 in a balanced ledger. */
  totals: Record<string, number>;
  /** Ledger transactions whose entries do not sum to zero. */
  unbalancedTransactions: string[];
  /** Payments whose account balances disagree with their status and amounts. */
  mismatchedPayments: string[];
}

/**
 * Card payments: authorize, capture, void and refund, each idempotent by key and written in one
 * transaction with its ledger postings, its event and its idempotency record.
 */
export class Payments {
  private readonly clock: () => number;

  constructor(
    private readonly repo: PaymentRepository,
    private readonly processor: CardProcessor,
    private readonly opts: PaymentsOptions = {},
  ) {
    this.clock = opts.clock ?? Date.now;
  }

  /**
   * Places a hold. A decline or processing failure is a result (status DECLINED or FAILED). The
   * processor is asked outside the transaction, so a slow card never holds a database lock.
   */
  async authorize(cmd: AuthorizeCommand, signal?: AbortSignal): Promise<OperationResult> {
    requireKey(cmd.idempotencyKey);
    requireId("order_id", cmd.orderId);
    requireId("customer_id", cmd.customerId);
    const amount = requireAmount("amount", cmd.amount);
    checkCard(cmd.cardNumber);
    const card = cmd.cardNumber;
    // The hash sees the card only as BIN + last four (what PCI DSS allows to keep).
    const hash = requestHash({ orderId: cmd.orderId, customerId: cmd.customerId, amount, card: `${card.slice(0, 6)}…${card.slice(-4)}/${card.length}` });
    const stored = await this.repo.findOperation("authorize", cmd.idempotencyKey);
    if (stored) return replay("authorize", cmd.idempotencyKey, stored, hash);
    const answer = await this.processor.authorize(card, amount, signal);
    return this.once("authorize", cmd.idempotencyKey, hash, async (uow, now) => {
      const payment: Payment = {
        id: `pay_${randomUUID()}`,
        orderId: cmd.orderId,
        customerId: cmd.customerId,
        amount,
        refundedMinor: 0,
        status: answer.outcome === "approved" ? "AUTHORIZED" : answer.outcome === "declined" ? "DECLINED" : "FAILED",
        declineReason: answer.outcome === "declined" ? answer.reason : answer.outcome === "failed" ? "PROCESSING_ERROR" : undefined,
        cardLast4: card.slice(-4),
        createdAt: now,
        updatedAt: now,
      };
      await uow.insertPayment(payment);
      if (payment.status === "AUTHORIZED") {
        await uow.post(payment.id, amount.currency, move(amount.amountMinor, "customer", "holds"), now);
        await uow.recordEvent({ type: "PaymentAuthorized", payment });
      }
      return { payment };
    });
  }

  /** AUTHORIZED → CAPTURED for the full amount; a captured payment is returned unchanged. */
  async capture(idempotencyKey: string, paymentId: string): Promise<OperationResult> {
    requireKey(idempotencyKey);
    requireId("payment_id", paymentId);
    return this.once("capture", idempotencyKey, requestHash({ paymentId }), async (uow, now) => {
      const p = await this.lock(uow, paymentId);
      if (p.status === "CAPTURED") return { payment: p };
      if (p.status !== "AUTHORIZED") throw new InvalidPaymentStateError(p.id, p.status, "capture");
      const payment: Payment = { ...p, status: "CAPTURED", updatedAt: now };
      await uow.updatePayment(payment);
      await uow.post(p.id, p.amount.currency, move(p.amount.amountMinor, "holds", "merchant"), now);
      await uow.recordEvent({ type: "PaymentCaptured", payment });
      return { payment };
    });
  }

  /** AUTHORIZED → VOIDED, releasing the hold; a voided payment is returned unchanged. */
  async void(idempotencyKey: string, paymentId: string): Promise<OperationResult> {
    requireKey(idempotencyKey);
    requireId("payment_id", paymentId);
    return this.once("void", idempotencyKey, requestHash({ paymentId }), async (uow, now) => {
      const p = await this.lock(uow, paymentId);
      if (p.status === "VOIDED") return { payment: p };
      if (p.status !== "AUTHORIZED") throw new InvalidPaymentStateError(p.id, p.status, "void");
      const payment: Payment = { ...p, status: "VOIDED", updatedAt: now };
      await uow.updatePayment(payment);
      await uow.post(p.id, p.amount.currency, move(p.amount.amountMinor, "holds", "customer"), now);
      await uow.recordEvent({ type: "PaymentVoided", payment });
      return { payment };
    });
  }

  /** Returns captured money, all that remains or `amount`: → PARTIALLY_REFUNDED or REFUNDED. */
  async refund(cmd: RefundCommand): Promise<OperationResult> {
    requireKey(cmd.idempotencyKey);
    requireId("payment_id", cmd.paymentId);
    const requested = cmd.amount === undefined ? undefined : requireAmount("amount", cmd.amount);
    if (cmd.reason.length > REASON_MAX_LENGTH) throw new ValidationError("reason", `reason is ${cmd.reason.length} characters long; the limit is ${REASON_MAX_LENGTH}`);
    const hash = requestHash({ paymentId: cmd.paymentId, amount: requested ?? null, reason: cmd.reason });
    return this.once("refund", cmd.idempotencyKey, hash, async (uow, now) => {
      const p = await this.lock(uow, cmd.paymentId);
      if (p.status !== "CAPTURED" && p.status !== "PARTIALLY_REFUNDED") throw new InvalidPaymentStateError(p.id, p.status, "refund");
      if (requested && requested.currency !== p.amount.currency) {
        throw new ValidationError("amount.currency_code", `refund currency ${requested.currency} differs from the payment's ${p.amount.currency}`, "currency-mismatch");
      }
      const refundable = p.amount.amountMinor - p.refundedMinor;
      const amountMinor = requested?.amountMinor ?? refundable;
      if (amountMinor > refundable) throw new RefundExceedsCapturedError(p.id, amountMinor, refundable);
      const refundedMinor = p.refundedMinor + amountMinor;
      const payment: Payment = { ...p, refundedMinor, status: refundedMinor === p.amount.amountMinor ? "REFUNDED" : "PARTIALLY_REFUNDED", updatedAt: now };
      const refundId = `ref_${randomUUID()}`;
      await uow.updatePayment(payment);
      await uow.insertRefund({ id: refundId, paymentId: p.id, amountMinor, reason: cmd.reason, createdAt: now });
      await uow.post(p.id, p.amount.currency, move(amountMinor, "merchant", "customer"), now);
      await uow.recordEvent({ type: "PaymentRefunded", payment, refundId, amountMinor });
      return { payment, refund: { id: refundId, amountMinor } };
    });
  }

  /** One payment by id. */
  async getPayment(paymentId: string): Promise<Payment> {
    requireId("payment_id", paymentId);
    const p = await this.repo.getPayment(paymentId);
    if (!p) throw new PaymentNotFoundError(paymentId);
    return p;
  }

  /**
   * Checks the ledger: every transaction sums to zero, every currency's total is zero, and each
   * payment's account balances match its status (AUTHORIZED: the amount in holds; captured: the
   * amount less refunds with the merchant; otherwise nothing). Reads the whole ledger: for tests
   * and tooling, not for request paths.
   */
  async ledgerBalance(): Promise<LedgerReport> {
    const sums = await this.repo.ledgerSums();
    const totals = Object.fromEntries(sums.totals.map((t) => [t.currency, t.sumMinor]));
    const actual = new Map<string, Record<LedgerAccount, number>>();
    for (const b of sums.balances) {
      const acc = actual.get(b.paymentId) ?? { customer: 0, holds: 0, merchant: 0 };
      acc[b.account] += b.sumMinor;
      actual.set(b.paymentId, acc);
    }
    const mismatchedPayments: string[] = [];
    const payments = await this.repo.allPayments();
    for (const p of payments) {
      const want = expectedBalances(p);
      const got = actual.get(p.id) ?? { customer: 0, holds: 0, merchant: 0 };
      if (got.customer !== want.customer || got.holds !== want.holds || got.merchant !== want.merchant) mismatchedPayments.push(p.id);
      actual.delete(p.id);
    }
    // Entries for payments that do not exist are mismatches too.
    mismatchedPayments.push(...actual.keys());
    const balanced = Object.values(totals).every((t) => t === 0) && sums.unbalancedTransactions.length === 0 && mismatchedPayments.length === 0;
    return { balanced, totals, unbalancedTransactions: sums.unbalancedTransactions, mismatchedPayments };
  }

  /** Replays a stored result, or runs `fn` in a transaction that also stores its result under the key. */
  private async once(op: Operation, key: string, hash: string, fn: (uow: PaymentUnitOfWork, now: number) => Promise<OperationResult>): Promise<OperationResult> {
    const stored = await this.repo.findOperation(op, key);
    if (stored) return replay(op, key, stored, hash);
    let events = 0;
    try {
      const result = await this.repo.inTransaction(async (uow) => {
        events = 0;
        const counting: PaymentUnitOfWork = Object.assign(Object.create(uow) as PaymentUnitOfWork, {
          recordEvent: async (e: Parameters<PaymentUnitOfWork["recordEvent"]>[0]) => {
            await uow.recordEvent(e);
            events++;
          },
        });
        const now = this.clock();
        const r = await fn(counting, now);
        await uow.saveOperation(op, key, hash, r, now);
        return r;
      });
      if (events > 0) this.opts.onEventsCommitted?.();
      return result;
    } catch (err) {
      // A concurrent call with the same key committed first; ours rolled back entirely.
      if (err instanceof OperationRaceError) {
        const winner = await this.repo.findOperation(op, key);
        if (winner) return replay(op, key, winner, hash);
      }
      throw err;
    }
  }

  private async lock(uow: PaymentUnitOfWork, id: string): Promise<Payment> {
    const p = await uow.lockPayment(id);
    if (!p) throw new PaymentNotFoundError(id);
    return p;
  }
}

/** What each account of a payment should hold given its status. */
export function expectedBalances(p: Payment): Record<LedgerAccount, number> {
  switch (p.status) {
    case "AUTHORIZED":
      return { customer: -p.amount.amountMinor, holds: p.amount.amountMinor, merchant: 0 };
    case "CAPTURED":
    case "PARTIALLY_REFUNDED":
    case "REFUNDED": {
      const kept = p.amount.amountMinor - p.refundedMinor;
      return { customer: -kept, holds: 0, merchant: kept };
    }
    default:
      return { customer: 0, holds: 0, merchant: 0 };
  }
}

/** A balanced ledger transaction moving `amountMinor` from one account to another. */
function move(amountMinor: number, from: LedgerAccount, to: LedgerAccount): Posting[] {
  return [
    { account: from, amountMinor: -amountMinor },
    { account: to, amountMinor },
  ];
}

function replay(op: Operation, key: string, stored: StoredOperation, hash: string): OperationResult {
  if (stored.requestHash !== hash) throw new IdempotencyKeyReusedError(op, key);
  return stored.result;
}

/** sha256 of a request's canonical JSON (fixed key order by construction). */
function requestHash(value: unknown): string {
  return createHash("sha256").update(JSON.stringify(value)).digest("hex");
}

function requireKey(key: string): void {
  if (!key) throw new ValidationError("idempotency_key", "idempotency_key must not be empty");
  if (key.length > KEY_MAX_LENGTH) throw new ValidationError("idempotency_key", `idempotency_key is ${key.length} characters long; the limit is ${KEY_MAX_LENGTH}`);
}

function requireId(field: string, value: string): void {
  if (!value) throw new ValidationError(field, `${field} must not be empty`);
  if (value.length > ID_MAX_LENGTH) throw new ValidationError(field, `${field} is ${value.length} characters long; the limit is ${ID_MAX_LENGTH}`);
}

/** A positive amount in a three-letter upper-case currency, within JS's exact integer range. */
function requireAmount(field: string, m: Money | undefined): Money {
  if (!m) throw new ValidationError(field, `${field} is required`, "amount");
  if (!/^[A-Z]{3}$/.test(m.currency)) throw new ValidationError(`${field}.currency_code`, `${field}.currency_code must be an ISO 4217 code like "EUR", got "${m.currency}"`, "amount");
  if (!Number.isSafeInteger(m.amountMinor) || m.amountMinor <= 0) {
    throw new ValidationError(`${field}.amount_minor`, `${field}.amount_minor must be a positive integer up to ${Number.MAX_SAFE_INTEGER}, got ${m.amountMinor}`, "amount");
  }
  return { currency: m.currency, amountMinor: m.amountMinor };
}

function checkCard(card: string): void {
  if (!/^\d+$/.test(card) || card.length < CARD_MIN_DIGITS || card.length > CARD_MAX_DIGITS) {
    throw new ValidationError("card_number", `card_number must be ${CARD_MIN_DIGITS} to ${CARD_MAX_DIGITS} digits`, "card");
  }
  if (!luhnValid(card)) throw new ValidationError("card_number", "card_number fails the Luhn check", "card");
}
