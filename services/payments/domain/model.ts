/** An amount in integer minor units of an ISO 4217 currency. */
export interface Money {
  currency: string;
  amountMinor: number;
}

/** Life cycle of a payment (payments.v1.PaymentStatus without the prefix). */
export type PaymentStatus = "AUTHORIZED" | "CAPTURED" | "VOIDED" | "REFUNDED" | "PARTIALLY_REFUNDED" | "DECLINED" | "FAILED";

/** Why the processor refused or could not process an authorization. */
export type DeclineReason = "GENERIC" | "INSUFFICIENT_FUNDS" | "EXPIRED_CARD" | "PROCESSING_ERROR";

/** A card payment for one order. */
export interface Payment {
  id: string;
  orderId: string;
  customerId: string;
  /** Authorized amount; captures are always of this full amount. */
  amount: Money;
  /** Refunded so far, in the payment's currency. */
  refundedMinor: number;
  status: PaymentStatus;
  /** Set only when DECLINED or FAILED. */
  declineReason?: DeclineReason;
  cardLast4: string;
  createdAt: number;
  updatedAt: number;
}

/** The answer of a mutating call, stored under its idempotency key and replayed on a repeat. */
export interface OperationResult {
  payment: Payment;
  /** Set for Refund. */
  refund?: { id: string; amountMinor: number };
}

/** The mutating methods, each with its own idempotency key space. */
export type Operation = "authorize" | "capture" | "void" | "refund";

/** A completed call under an idempotency key. */
export interface StoredOperation {
  requestHash: string;
  result: OperationResult;
}

/**
 * Accounts of the double-entry ledger, per payment. Every ledger transaction's entries sum to zero:
 * - `customer`: the cardholder's money (negative: held or collected from them)
 * - `holds`: authorized, not yet captured
 * - `merchant`: collected by the shop
 */
export type LedgerAccount = "customer" | "holds" | "merchant";

/** One line of a ledger transaction; amounts are signed. */
export interface Posting {
  account: LedgerAccount;
  amountMinor: number;
}

/** Facts recorded in the outbox in the same transaction as the change. */
export type PaymentEvent =
  | { type: "PaymentAuthorized" | "PaymentCaptured" | "PaymentVoided"; payment: Payment }
  | { type: "PaymentRefunded"; payment: Payment; refundId: string; amountMinor: number };

/** The operations a use case runs inside one database transaction. */
export interface PaymentUnitOfWork {
  /** The payment, locked until the transaction ends. */
  lockPayment(id: string): Promise<Payment | undefined>;
  insertPayment(p: Payment): Promise<void>;
  /** Writes status, refunded amount and update time. */
  updatePayment(p: Payment): Promise<void>;
  insertRefund(r: { id: string; paymentId: string; amountMinor: number; reason: string; createdAt: number }): Promise<void>;
  /** Records one balanced ledger transaction (the postings must sum to zero). */
  post(paymentId: string, currency: string, postings: Posting[], now: number): Promise<void>;
  recordEvent(e: PaymentEvent): Promise<void>;
  /** Stores the call's result under its key; throws OperationRaceError if the key is taken. */
  saveOperation(op: Operation, key: string, requestHash: string, result: OperationResult, now: number): Promise<void>;
}

/** Sums over the ledger, for {@link LedgerReport}. */
export interface LedgerSums {
  /** Sum of every entry per currency. */
  totals: Array<{ currency: string; sumMinor: number }>;
  /** Balance of each (payment, account) that has entries. */
  balances: Array<{ paymentId: string; account: LedgerAccount; sumMinor: number }>;
  /** Ledger transactions whose entries do not sum to zero. */
  unbalancedTransactions: string[];
}

/** Storage of payments, refunds, the ledger and idempotency records. */
export interface PaymentRepository {
  getPayment(id: string): Promise<Payment | undefined>;
  findOperation(op: Operation, key: string): Promise<StoredOperation | undefined>;
  /** Runs fn in one transaction: committed when it resolves, rolled back when it throws. */
  inTransaction<T>(fn: (uow: PaymentUnitOfWork) => Promise<T>): Promise<T>;
  ledgerSums(): Promise<LedgerSums>;
  /** Every payment (for ledger checks; test and tooling use). */
  allPayments(): Promise<Payment[]>;
}
