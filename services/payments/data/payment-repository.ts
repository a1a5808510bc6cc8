import { create } from "@bufbuild/protobuf";
import { sql, type Kysely, type Transaction } from "kysely";
import { randomUUID } from "node:crypto";
import { PaymentAuthorizedSchema, PaymentCapturedSchema, PaymentRefundedSchema, PaymentVoidedSchema } from "../../../gen/payments/v1/events_pb.js";
import { isUniqueViolation, transaction, type Database } from "../../../mesh/db/index.js";
import { enqueueEvent } from "../../../mesh/events/index.js";
import { OperationRaceError } from "../domain/errors.js";
import type {
  DeclineReason,
  LedgerAccount,
  LedgerSums,
  Operation,
  OperationResult,
  Payment,
  PaymentEvent,
  PaymentRepository,
  PaymentStatus,
  PaymentUnitOfWork,
  Posting,
  StoredOperation,
} from "../domain/model.js";

interface PaymentTables {
  payments: {
    id: string;
    order_id: string;
    customer_id: string;
    currency: string;
    amount_minor: number;
    refunded_minor: number;
    status: PaymentStatus;
    decline_reason: DeclineReason | null;
    card_last4: string;
    created_at: number;
    updated_at: number;
  };
  refunds: { id: string; payment_id: string; amount_minor: number; reason: string; created_at: number };
  ledger_entries: { id: string; txn_id: string; payment_id: string; account: LedgerAccount; currency: string; amount_minor: number; created_at: number };
  payment_operations: { operation: Operation; idempotency_key: string; request_hash: string; result: string; created_at: number };
}

type Db = Kysely<PaymentTables>;

/** Producer name in event envelopes. */
export const PRODUCER = "payments";

/** {@link PaymentRepository} on SQLite or PostgreSQL. */
export class SqlPaymentRepository implements PaymentRepository {
  private readonly db: Db;

  constructor(private readonly database: Database) {
    this.db = database.db as Db;
  }

  async getPayment(id: string): Promise<Payment | undefined> {
    const row = await this.db.selectFrom("payments").selectAll().where("id", "=", id).executeTakeFirst();
    return row && toPayment(row);
  }

  async findOperation(op: Operation, key: string): Promise<StoredOperation | undefined> {
    const row = await this.db
      .selectFrom("payment_operations")
      .select(["request_hash", "result"])
      .where("operation", "=", op)
      .where("idempotency_key", "=", key)
      .executeTakeFirst();
    return row && { requestHash: row.request_hash, result: JSON.parse(row.result) as OperationResult };
  }

  inTransaction<T>(fn: (uow: PaymentUnitOfWork) => Promise<T>): Promise<T> {
    return transaction(this.database, (trx) => fn(new SqlUnitOfWork(trx as unknown as Transaction<PaymentTables>)));
  }

  async ledgerSums(): Promise<LedgerSums> {
    const totals = await this.db
      .selectFrom("ledger_entries")
      .select(["currency", (eb) => eb.fn.sum<number>("amount_minor").as("sum")])
      .groupBy("currency")
      .execute();
    const balances = await this.db
      .selectFrom("ledger_entries")
      .select(["payment_id", "account", (eb) => eb.fn.sum<number>("amount_minor").as("sum")])
      .groupBy(["payment_id", "account"])
      .execute();
    const unbalanced = await this.db
      .selectFrom("ledger_entries")
      .select("txn_id")
      .groupBy("txn_id")
      .having((eb) => eb.fn.sum("amount_minor"), "<>", 0)
      .execute();
    return {
      // PostgreSQL's sum(bigint) is numeric and arrives as a string.
      totals: totals.map((t) => ({ currency: t.currency, sumMinor: Number(t.sum) })),
      balances: balances.map((b) => ({ paymentId: b.payment_id, account: b.account, sumMinor: Number(b.sum) })),
      unbalancedTransactions: unbalanced.map((u) => u.txn_id),
    };
  }

  async allPayments(): Promise<Payment[]> {
    return (await this.db.selectFrom("payments").selectAll().orderBy("created_at").execute()).map(toPayment);
  }
}

class SqlUnitOfWork implements PaymentUnitOfWork {
  constructor(private readonly trx: Transaction<PaymentTables>) {}

  async lockPayment(id: string): Promise<Payment | undefined> {
    const row = await this.trx.selectFrom("payments").selectAll().where("id", "=", id).forUpdate().executeTakeFirst();
    return row && toPayment(row);
  }

  async insertPayment(p: Payment): Promise<void> {
    await this.trx
      .insertInto("payments")
      .values({
        id: p.id,
        order_id: p.orderId,
        customer_id: p.customerId,
        currency: p.amount.currency,
        amount_minor: p.amount.amountMinor,
        refunded_minor: p.refundedMinor,
        status: p.status,
        decline_reason: p.declineReason ?? null,
        card_last4: p.cardLast4,
        created_at: p.createdAt,
        updated_at: p.updatedAt,
      })
      .execute();
  }

  async updatePayment(p: Payment): Promise<void> {
    await this.trx.updateTable("payments").set({ status: p.status, refunded_minor: p.refundedMinor, updated_at: p.updatedAt }).where("id", "=", p.id).execute();
  }

  async insertRefund(r: { id: string; paymentId: string; amountMinor: number; reason: string; createdAt: number }): Promise<void> {
    await this.trx.insertInto("refunds").values({ id: r.id, payment_id: r.paymentId, amount_minor: r.amountMinor, reason: r.reason, created_at: r.createdAt }).execute();
  }

  async post(paymentId: string, currency: string, postings: Posting[], now: number): Promise<void> {
    const sum = postings.reduce((s, p) => s + p.amountMinor, 0);
    if (sum !== 0) throw new Error(`ledger transaction for payment ${paymentId} does not balance: its postings sum to ${sum}`);
    const txnId = randomUUID();
    await this.trx
      .insertInto("ledger_entries")
      .values(postings.map((p) => ({ id: randomUUID(), txn_id: txnId, payment_id: paymentId, account: p.account, currency, amount_minor: p.amountMinor, created_at: now })))
      .execute();
  }

  async recordEvent(e: PaymentEvent): Promise<void> {
    const trx = this.trx as unknown as Transaction<any>;
    const p = e.payment;
    const base = { paymentId: p.id, orderId: p.orderId, customerId: p.customerId };
    const money = (amountMinor: number) => ({ currencyCode: p.amount.currency, amountMinor: BigInt(amountMinor) });
    const common = { producer: PRODUCER, aggregateId: p.id };
    switch (e.type) {
      case "PaymentAuthorized":
        await enqueueEvent(trx, { ...common, schema: PaymentAuthorizedSchema, message: create(PaymentAuthorizedSchema, { ...base, amount: money(p.amount.amountMinor) }) });
        return;
      case "PaymentCaptured":
        await enqueueEvent(trx, { ...common, schema: PaymentCapturedSchema, message: create(PaymentCapturedSchema, { ...base, amount: money(p.amount.amountMinor) }) });
        return;
      case "PaymentVoided":
        await enqueueEvent(trx, { ...common, schema: PaymentVoidedSchema, message: create(PaymentVoidedSchema, { ...base, amount: money(p.amount.amountMinor) }) });
        return;
      case "PaymentRefunded":
        await enqueueEvent(trx, {
          ...common,
          schema: PaymentRefundedSchema,
          message: create(PaymentRefundedSchema, {
            ...base,
            refundId: e.refundId,
            amount: money(e.amountMinor),
            totalRefunded: money(p.refundedMinor),
            fullyRefunded: p.status === "REFUNDED",
          }),
        });
        return;
    }
  }

  async saveOperation(op: Operation, key: string, requestHash: string, result: OperationResult, now: number): Promise<void> {
    try {
      await this.trx
        .insertInto("payment_operations")
        .values({ operation: op, idempotency_key: key, request_hash: requestHash, result: JSON.stringify(result), created_at: now })
        .execute();
    } catch (err) {
      if (isUniqueViolation(err)) throw new OperationRaceError(key);
      throw err;
    }
  }
}

function toPayment(r: PaymentTables["payments"]): Payment {
  return {
    id: r.id,
    orderId: r.order_id,
    customerId: r.customer_id,
    amount: { currency: r.currency, amountMinor: Number(r.amount_minor) },
    refundedMinor: Number(r.refunded_minor),
    status: r.status,
    ...(r.decline_reason ? { declineReason: r.decline_reason } : {}),
    cardLast4: r.card_last4,
    createdAt: Number(r.created_at),
    updatedAt: Number(r.updated_at),
  };
}
