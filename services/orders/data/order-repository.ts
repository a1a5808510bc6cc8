import type { Kysely, Selectable, Transaction } from "kysely";
import { isUniqueViolation, transaction, type Database } from "../../../mesh/db/index.js";
import type { Failure, Order, OrderItem, OrderStatus, SagaState } from "../domain/order.js";
import type { OrderChange, OrderCursor, OrderRepository, OrphanPayment } from "../domain/repository.js";
import { enqueueOrderEvent } from "./events.js";

interface OrdersTable {
  id: string;
  customer_id: string;
  idempotency_key: string;
  request_hash: string;
  currency_code: string;
  items: string;
  total_minor: number;
  status: string;
  failure: string | null;
  cancel_reason: string;
  cancel_requested: string | null;
  payment_id: string;
  reservation_id: string;
  saga_phase: string;
  saga: string;
  saga_owner: string | null;
  saga_lease_until: number;
  traceparent: string;
  version: number;
  created_at: number;
  updated_at: number;
}

interface OrderPaymentsTable {
  order_id: string;
  payment_id: string;
  linked_at: number;
  settled_at: number | null;
}

/** The orders tables, for Kysely. */
export interface OrdersTables {
  orders: OrdersTable;
  order_payments: OrderPaymentsTable;
}

type OrderRow = Selectable<OrdersTable>;

/** Options for {@link SqlOrderRepository}. */
export interface SqlOrderRepositoryOptions {
  /** Called after a transaction that wrote events committed (e.g. `relay.kick()`). */
  onEventsCommitted?: () => void;
}

/** {@link OrderRepository} on Kysely; the same SQL on SQLite and PostgreSQL. */
export class SqlOrderRepository implements OrderRepository {
  private readonly db: Kysely<OrdersTables>;

  constructor(
    private readonly database: Database,
    private readonly opts: SqlOrderRepositoryOptions = {},
  ) {
    this.db = database.db as Kysely<OrdersTables>;
  }

  async insert(order: Order, owner: string, leaseUntil: number): Promise<boolean> {
    try {
      await this.db.insertInto("orders").values({ ...toRow(order), saga_owner: owner, saga_lease_until: leaseUntil }).execute();
      return true;
    } catch (err) {
      if (isUniqueViolation(err)) return false;
      throw err;
    }
  }

  async get(id: string): Promise<Order | undefined> {
    const row = await this.db.selectFrom("orders").selectAll().where("id", "=", id).executeTakeFirst();
    return row && toOrder(row);
  }

  async getByIdempotencyKey(customerId: string, key: string): Promise<Order | undefined> {
    const row = await this.db.selectFrom("orders").selectAll().where("customer_id", "=", customerId).where("idempotency_key", "=", key).executeTakeFirst();
    return row && toOrder(row);
  }

  async listByCustomer(customerId: string, after: OrderCursor | undefined, limit: number): Promise<Order[]> {
    let q = this.db.selectFrom("orders").selectAll().where("customer_id", "=", customerId);
    if (after) {
      q = q.where((eb) => eb.or([eb("created_at", "<", after.createdAt), eb.and([eb("created_at", "=", after.createdAt), eb("id", "<", after.id)])]));
    }
    const rows = await q.orderBy("created_at", "desc").orderBy("id", "desc").limit(limit).execute();
    return rows.map(toOrder);
  }

  async claim(id: string, owner: string, leaseUntil: number, now: number): Promise<Order | undefined> {
    const r = await this.db
      .updateTable("orders")
      .set({ saga_owner: owner, saga_lease_until: leaseUntil })
      .where("id", "=", id)
      .where("saga_phase", "<>", "finished")
      .where((eb) => eb.or([eb("saga_owner", "is", null), eb("saga_owner", "=", owner), eb("saga_lease_until", "<", now)]))
      .executeTakeFirst();
    if (Number(r.numUpdatedRows) !== 1) return undefined;
    const order = await this.get(id);
    return order;
  }

  async renewLeases(owner: string, ids: string[], leaseUntil: number): Promise<void> {
    if (ids.length === 0) return;
    await this.db.updateTable("orders").set({ saga_lease_until: leaseUntil }).where("saga_owner", "=", owner).where("id", "in", ids).execute();
  }

  async releaseLease(id: string, owner: string): Promise<void> {
    await this.db.updateTable("orders").set({ saga_owner: null, saga_lease_until: 0 }).where("id", "=", id).where("saga_owner", "=", owner).execute();
  }

  async findClaimable(now: number, limit: number): Promise<string[]> {
    const rows = await this.db
      .selectFrom("orders")
      .select("id")
      .where("saga_phase", "<>", "finished")
      .where((eb) => eb.or([eb("saga_owner", "is", null), eb("saga_lease_until", "<", now)]))
      .orderBy("saga_lease_until")
      .limit(limit)
      .execute();
    return rows.map((r) => r.id);
  }

  async update(id: string, owner: string, change: OrderChange): Promise<Order | undefined> {
    const updated = await transaction(this.database, async (anyTrx) => {
      const trx = anyTrx as Transaction<OrdersTables>;
      const row = await trx.selectFrom("orders").selectAll().where("id", "=", id).where("saga_owner", "=", owner).forUpdate().executeTakeFirst();
      if (!row) return undefined;
      const finished = change.saga.phase === "finished";
      const set: Partial<OrderRow> = {
        saga: JSON.stringify(change.saga),
        saga_phase: change.saga.phase,
        version: row.version + 1,
        updated_at: Math.max(Date.now(), row.updated_at),
        ...(finished ? { saga_owner: null, saga_lease_until: 0 } : {}),
        ...(change.status !== undefined ? { status: change.status } : {}),
        ...(change.items !== undefined ? { items: JSON.stringify(change.items) } : {}),
        ...(change.totalMinor !== undefined ? { total_minor: change.totalMinor } : {}),
        ...(change.failure !== undefined ? { failure: change.failure === null ? null : JSON.stringify(change.failure) } : {}),
        ...(change.cancelReason !== undefined ? { cancel_reason: change.cancelReason } : {}),
        ...(change.paymentId !== undefined ? { payment_id: change.paymentId } : {}),
        ...(change.reservationId !== undefined ? { reservation_id: change.reservationId } : {}),
      };
      await trx.updateTable("orders").set(set).where("id", "=", id).execute();
      if (change.linkPayment) await linkPaymentIn(trx, id, change.linkPayment);
      const order = toOrder({ ...row, ...set } as OrderRow);
      for (const kind of change.events ?? []) await enqueueOrderEvent(trx, kind, order, change.previousStatus);
      return order;
    });
    if (updated && change.events?.length) this.opts.onEventsCommitted?.();
    return updated;
  }

  async deleteUnplaced(id: string, owner: string): Promise<boolean> {
    const r = await this.db.deleteFrom("orders").where("id", "=", id).where("saga_owner", "=", owner).where("saga", "=", JSON.stringify(unplacedSaga())).executeTakeFirst();
    return Number(r.numDeletedRows) === 1;
  }

  async requestCancel(id: string, reason: string): Promise<Order | undefined> {
    return transaction(this.database, async (anyTrx) => {
      const trx = anyTrx as Transaction<OrdersTables>;
      const row = await trx.selectFrom("orders").selectAll().where("id", "=", id).forUpdate().executeTakeFirst();
      if (!row) return undefined;
      const order = toOrder(row);
      let set: Partial<OrderRow> | undefined;
      if (order.status === "PENDING" && order.saga.phase === "forward" && row.cancel_requested === null) {
        set = { cancel_requested: reason };
      } else if (order.status === "CONFIRMED" && order.saga.phase === "finished") {
        const saga: SagaState = { ...order.saga, phase: "compensating", outcome: { status: "CANCELLED", reason, previousStatus: "CONFIRMED" } };
        set = { saga: JSON.stringify(saga), saga_phase: saga.phase, saga_owner: null, saga_lease_until: 0 };
      }
      if (!set) return order;
      set = { ...set, version: row.version + 1, updated_at: Math.max(Date.now(), row.updated_at) };
      await trx.updateTable("orders").set(set).where("id", "=", id).execute();
      return toOrder({ ...row, ...set } as OrderRow);
    });
  }

  async cancelRequest(id: string): Promise<string | undefined> {
    const row = await this.db.selectFrom("orders").select("cancel_requested").where("id", "=", id).executeTakeFirst();
    return row?.cancel_requested ?? undefined;
  }

  async markShipped(id: string): Promise<Order | undefined> {
    return transaction(this.database, async (anyTrx) => {
      const trx = anyTrx as Transaction<OrdersTables>;
      const row = await trx.selectFrom("orders").selectAll().where("id", "=", id).forUpdate().executeTakeFirst();
      if (!row || row.status !== "CONFIRMED" || row.saga_phase !== "finished") return undefined;
      const set = { status: "SHIPPED", version: row.version + 1, updated_at: Math.max(Date.now(), row.updated_at) };
      await trx.updateTable("orders").set(set).where("id", "=", id).execute();
      return toOrder({ ...row, ...set } as OrderRow);
    });
  }

  async linkPayment(orderId: string, paymentId: string): Promise<void> {
    await transaction(this.database, (trx) => linkPaymentIn(trx, orderId, paymentId));
  }

  async unsettledPayments(orderId: string): Promise<string[]> {
    const rows = await this.db
      .selectFrom("order_payments")
      .select("payment_id")
      .where("order_id", "=", orderId)
      .where("settled_at", "is", null)
      .orderBy("linked_at")
      .orderBy("payment_id")
      .execute();
    return rows.map((r) => r.payment_id);
  }

  async markPaymentSettled(orderId: string, paymentId: string): Promise<void> {
    await this.db.updateTable("order_payments").set({ settled_at: Date.now() }).where("order_id", "=", orderId).where("payment_id", "=", paymentId).execute();
  }

  async findOrphanPayments(limit: number): Promise<OrphanPayment[]> {
    const rows = await this.db
      .selectFrom("order_payments as p")
      .innerJoin("orders as o", "o.id", "p.order_id")
      .select(["p.order_id", "p.payment_id"])
      .where("p.settled_at", "is", null)
      .where("o.saga_phase", "=", "finished")
      .where((eb) => eb.or([eb("o.status", "in", ["FAILED", "CANCELLED"]), eb("p.payment_id", "<>", eb.ref("o.payment_id"))]))
      .limit(limit)
      .execute();
    return rows.map((r) => ({ orderId: r.order_id, paymentId: r.payment_id }));
  }
}

/**
 * Links a payment to an order inside the caller's transaction (the saga's write, or the inbox
 * transaction of a PaymentAuthorized event). Unknown orders are ignored: not ours to settle.
 */
export async function linkPaymentIn(trx: Transaction<any>, orderId: string, paymentId: string): Promise<void> {
  const t = trx as Transaction<OrdersTables>;
  const exists = await t.selectFrom("orders").select("id").where("id", "=", orderId).executeTakeFirst();
  if (!exists) return;
  await t
    .insertInto("order_payments")
    .values({ order_id: orderId, payment_id: paymentId, linked_at: Date.now(), settled_at: null })
    .onConflict((oc) => oc.columns(["order_id", "payment_id"]).doNothing())
    .execute();
}

/** The saga of an order whose checkout has not started: the only state deleteUnplaced removes. */
function unplacedSaga(): SagaState {
  return { phase: "forward", steps: { validate: "intent" } };
}

function toRow(order: Order): OrdersTable {
  return {
    id: order.id,
    customer_id: order.customerId,
    idempotency_key: order.idempotencyKey,
    request_hash: order.requestHash,
    currency_code: order.currency,
    items: JSON.stringify(order.items),
    total_minor: order.totalMinor,
    status: order.status,
    failure: order.failure ? JSON.stringify(order.failure) : null,
    cancel_reason: order.cancelReason,
    cancel_requested: null,
    payment_id: order.paymentId,
    reservation_id: order.reservationId,
    saga_phase: order.saga.phase,
    saga: JSON.stringify(order.saga),
    saga_owner: null,
    saga_lease_until: 0,
    traceparent: order.traceparent,
    version: order.version,
    created_at: order.createdAt,
    updated_at: order.updatedAt,
  };
}

function toOrder(row: OrderRow): Order {
  return {
    id: row.id,
    customerId: row.customer_id,
    idempotencyKey: row.idempotency_key,
    requestHash: row.request_hash,
    currency: row.currency_code,
    items: JSON.parse(row.items) as OrderItem[],
    totalMinor: Number(row.total_minor),
    status: row.status as OrderStatus,
    failure: row.failure ? (JSON.parse(row.failure) as Failure) : null,
    cancelReason: row.cancel_reason,
    paymentId: row.payment_id,
    reservationId: row.reservation_id,
    saga: JSON.parse(row.saga) as SagaState,
    traceparent: row.traceparent,
    version: Number(row.version),
    createdAt: Number(row.created_at),
    updatedAt: Number(row.updated_at),
  };
}
