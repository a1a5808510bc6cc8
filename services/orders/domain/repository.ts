import type { Failure, Order, OrderItem, OrderStatus, SagaState } from "./order.js";

/** Events the orders service publishes; the repository writes them with the change that causes them. */
export type OrderEventKind = "placed" | "confirmed" | "failed" | "cancelled";

/** A change of an order by its saga owner, applied atomically with its events. */
export interface OrderChange {
  saga: SagaState;
  status?: OrderStatus;
  items?: OrderItem[];
  totalMinor?: number;
  failure?: Failure | null;
  cancelReason?: string;
  paymentId?: string;
  reservationId?: string;
  /** A payment made for the order, to be settled if the order does not keep it. */
  linkPayment?: string;
  /** Events built from the order as it is after the change. */
  events?: OrderEventKind[];
  /** "cancelled" event only: the status the order had before. */
  previousStatus?: "PENDING" | "CONFIRMED";
}

/** Where a customer's newest-first listing continues: after this (createdAt, id). */
export interface OrderCursor {
  createdAt: number;
  id: string;
}

/** A payment linked to an order that no saga will settle (a late authorization). */
export interface OrphanPayment {
  orderId: string;
  paymentId: string;
}

/**
 * Storage of orders and their sagas. A saga is driven by one owner at a time: the owner holds a
 * lease (saga_owner, lease_until) and every saga write is fenced by it, so a presumed-dead owner's
 * late write changes nothing.
 */
export interface OrderRepository {
  /** Inserts a new order owned by `owner`; false when the customer already used its idempotency key. */
  insert(order: Order, owner: string, leaseUntil: number): Promise<boolean>;
  get(id: string): Promise<Order | undefined>;
  getByIdempotencyKey(customerId: string, key: string): Promise<Order | undefined>;
  /** A customer's orders, newest first, strictly after `after`. */
  listByCustomer(customerId: string, after: OrderCursor | undefined, limit: number): Promise<Order[]>;
  /** Takes the saga lease if it is free, expired or already ours; the order when taken. */
  claim(id: string, owner: string, leaseUntil: number, now: number): Promise<Order | undefined>;
  /** Extends the leases `owner` holds on `ids`. */
  renewLeases(owner: string, ids: string[], leaseUntil: number): Promise<void>;
  /** Gives a lease back so another process can resume at once. */
  releaseLease(id: string, owner: string): Promise<void>;
  /** Ids of unfinished sagas whose lease is free or expired. */
  findClaimable(now: number, limit: number): Promise<string[]>;
  /** Applies `change` if `owner` holds the lease; the order after it, or undefined when the lease was lost. */
  update(id: string, owner: string, change: OrderChange): Promise<Order | undefined>;
  /** Deletes an order whose checkout never started (nothing placed, held or published). */
  deleteUnplaced(id: string, owner: string): Promise<boolean>;
  /**
   * Records a cancellation request atomically: a PENDING order in checkout gets the request (its
   * saga honours it before the next step); a CONFIRMED order's saga starts compensating towards
   * CANCELLED. Other orders are returned unchanged. Undefined when the order does not exist.
   */
  requestCancel(id: string, reason: string): Promise<Order | undefined>;
  /** The cancellation request of a PENDING order, if any (kept apart from the saga state the owner writes). */
  cancelRequest(id: string): Promise<string | undefined>;
  /** Fulfilment hook: CONFIRMED → SHIPPED. The order after it, or undefined when it was not CONFIRMED. */
  markShipped(id: string): Promise<Order | undefined>;
  /** Links a payment to an order (no-op when linked or the order is unknown). */
  linkPayment(orderId: string, paymentId: string): Promise<void>;
  /** Payments of the order not yet settled. */
  unsettledPayments(orderId: string): Promise<string[]>;
  markPaymentSettled(orderId: string, paymentId: string): Promise<void>;
  /** Unsettled payments of finished orders that do not keep them. */
  findOrphanPayments(limit: number): Promise<OrphanPayment[]>;
}
