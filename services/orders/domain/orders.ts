import { randomUUID } from "node:crypto";
import type { OrderChanges } from "./changes.js";
import type { CheckoutSaga } from "./checkout-saga.js";
import {
  CheckoutFailedError,
  CheckoutUnavailableError,
  IdempotencyKeyReusedError,
  InvalidPageTokenError,
  NotCancellableError,
  OrderNotFoundError,
  ValidationError,
} from "./errors.js";
import { isFinal, requestHash, validateCreateInput, type CreateOrderInput, type Order } from "./order.js";
import type { OrderCursor, OrderRepository } from "./repository.js";

// 1 s before the caller's deadline CreateOrder answers with the PENDING order instead of waiting
// on: enough for the response to travel back, so the caller gets an order id, not DeadlineExceeded.
const ANSWER_MARGIN_MS = 1_000;
// Without a caller deadline CreateOrder waits at most its contract timeout (10 s) for the saga.
const DEFAULT_CREATE_WAIT_MS = 10_000;
// Waiters re-read the order this often in case another replica changed it (in-process changes wake them at once).
const POLL_MS = 250;
// 20 and 100: ListOrders' default and maximum page sizes, from the contract.
const DEFAULT_PAGE_SIZE = 20;
const MAX_PAGE_SIZE = 100;
// 200 characters: every reason a person types fits; longer text is not a reason but a payload.
const MAX_CANCEL_REASON = 200;
const DEFAULT_CANCEL_REASON = "cancelled by the customer";

/** Per-call facts from the transport. */
export interface CallContext {
  /** Time left until the caller's deadline, if it set one. */
  timeoutMs?: number;
  signal?: AbortSignal;
  /** W3C traceparent of the call, stored so events of the saga join its trace. */
  traceparent?: string;
}

/** A page of orders and where the next one starts. */
export interface OrderPage {
  orders: Order[];
  nextPageToken: string;
}

/** The orders use cases: checkout (via the saga), reads, cancellation and watching. */
export class OrdersService {
  constructor(
    private readonly repo: OrderRepository,
    private readonly saga: CheckoutSaga,
    private readonly changes: OrderChanges,
  ) {}

  /**
   * Places an order and runs its checkout. Answers with the final order (CONFIRMED), throws
   * CheckoutFailedError for a FAILED one, or — when the caller's deadline is close — answers with
   * the PENDING order while the saga continues. The same (customer, idempotency key) always maps
   * to the same order: a repeat, concurrent or later, waits for and answers that order's outcome.
   */
  async create(input: CreateOrderInput, ctx: CallContext = {}): Promise<Order> {
    validateCreateInput(input);
    const hash = requestHash(input);
    const answerBy = Date.now() + Math.max(0, (ctx.timeoutMs ?? DEFAULT_CREATE_WAIT_MS) - ANSWER_MARGIN_MS);
    for (;;) {
      const existing = await this.repo.getByIdempotencyKey(input.customerId, input.idempotencyKey);
      if (existing) {
        if (existing.requestHash !== hash) throw new IdempotencyKeyReusedError(input.idempotencyKey, existing.id);
        // A repeat after a crash brings the card again: the resumed saga can still authorize.
        if (existing.saga.phase === "forward" && existing.saga.steps.authorize !== "done") this.saga.rememberCard(existing.id, input.cardNumber);
        void this.saga.drive(existing.id);
        return this.outcome(existing.id, answerBy, ctx.signal);
      }
      const now = Date.now();
      const order: Order = {
        id: randomUUID(),
        customerId: input.customerId,
        idempotencyKey: input.idempotencyKey,
        requestHash: hash,
        currency: input.currency,
        items: input.items.map((it) => ({
          productId: it.productId,
          name: "",
          quantity: it.quantity,
          unitPriceMinor: 0,
          expectedUnitPriceMinor: it.expectedUnitPrice ? it.expectedUnitPrice.amountMinor : null,
        })),
        totalMinor: 0,
        status: "PENDING",
        failure: null,
        cancelReason: "",
        paymentId: "",
        reservationId: "",
        saga: { phase: "forward", steps: {} },
        traceparent: ctx.traceparent ?? "",
        version: 1,
        createdAt: now,
        updatedAt: now,
      };
      this.saga.rememberCard(order.id, input.cardNumber);
      if (!(await this.repo.insert(order, this.saga.owner, this.saga.leaseUntil(now)))) {
        this.saga.forgetCard(order.id);
        continue; // a concurrent request with the same key won: answer its order
      }
      void this.saga.drive(order.id);
      return this.outcome(order.id, answerBy, ctx.signal);
    }
  }

  /** Waits for the checkout to finish (or the answer time) and turns the order into CreateOrder's answer. */
  private async outcome(id: string, answerBy: number, signal?: AbortSignal): Promise<Order> {
    const order = await this.waitUntil(id, (o) => o === undefined || o.saga.phase === "finished" || isFinal(o.status), answerBy, signal);
    if (!order) throw new CheckoutUnavailableError("the catalog could not be reached to price the order; nothing was ordered, retry later");
    if (order.status === "FAILED" && order.failure) {
      throw new CheckoutFailedError(order.id, order.failure.reason, order.failure.retryable, order.failure.message, order.failure.metadata);
    }
    return order;
  }

  async get(id: string): Promise<Order> {
    if (id === "") throw new ValidationError("order_id", "order_id is required");
    const order = await this.repo.get(id);
    if (!order) throw new OrderNotFoundError(id);
    return order;
  }

  /** A customer's orders, newest first. */
  async list(customerId: string, pageSize: number, pageToken: string): Promise<OrderPage> {
    if (customerId === "") throw new ValidationError("customer_id", "customer_id is required");
    if (!Number.isInteger(pageSize) || pageSize < 0) throw new ValidationError("page_size", `page_size ${pageSize} must not be negative`);
    const limit = pageSize === 0 ? DEFAULT_PAGE_SIZE : Math.min(pageSize, MAX_PAGE_SIZE);
    const after = pageToken === "" ? undefined : decodePageToken(pageToken, customerId);
    const rows = await this.repo.listByCustomer(customerId, after, limit + 1);
    const orders = rows.slice(0, limit);
    const last = orders[orders.length - 1];
    return { orders, nextPageToken: rows.length > limit ? encodePageToken(customerId, { createdAt: last.createdAt, id: last.id }) : "" };
  }

  /**
   * Cancels a PENDING or CONFIRMED order and waits until its stock and money are given back.
   * Idempotent: a CANCELLED order is returned as it is. The wait ends with the caller's signal; the
   * cancellation itself is persisted and completes regardless.
   */
  async cancel(id: string, reason: string, signal?: AbortSignal): Promise<Order> {
    if (reason.length > MAX_CANCEL_REASON) throw new ValidationError("reason", `reason has ${reason.length} characters; at most ${MAX_CANCEL_REASON} are allowed`);
    const before = await this.get(id);
    if (before.status === "CANCELLED") return before;
    if (before.status === "FAILED" || before.status === "SHIPPED") throw new NotCancellableError(id, before.status);
    const requested = await this.repo.requestCancel(id, reason.trim() || DEFAULT_CANCEL_REASON);
    if (!requested) throw new OrderNotFoundError(id);
    if (requested.status === "FAILED" || requested.status === "SHIPPED") throw new NotCancellableError(id, requested.status);
    this.changes.notify(id);
    void this.saga.drive(id);
    const after = await this.waitUntil(id, (o) => o === undefined || isFinal(o.status), Number.POSITIVE_INFINITY, signal);
    if (!after) throw new OrderNotFoundError(id);
    // A checkout that failed while the cancellation waited ends FAILED, which is not cancellable.
    if (after.status === "FAILED") throw new NotCancellableError(id, after.status);
    // CANCELLED, or still on the way when the caller stopped waiting: the cancellation goes on.
    return after;
  }

  /** Fulfilment hook (no API yet): CONFIRMED → SHIPPED; undefined when the order was not CONFIRMED. */
  async markShipped(id: string): Promise<Order | undefined> {
    const order = await this.repo.markShipped(id);
    if (order) this.changes.notify(id);
    return order;
  }

  /**
   * The order now, then after every change, until it is CANCELLED or FAILED or `signal` aborts.
   * Throws OrderNotFoundError when it does not exist.
   */
  async *watch(id: string, signal: AbortSignal): AsyncGenerator<Order> {
    if (id === "") throw new ValidationError("order_id", "order_id is required");
    const listener = this.changes.listen(id);
    try {
      let version = 0;
      while (!signal.aborted) {
        const order = await this.repo.get(id);
        if (!order) throw new OrderNotFoundError(id);
        if (order.version !== version) {
          version = order.version;
          yield order;
          if (isFinal(order.status)) return;
        }
        await listener.next(POLL_MS, signal);
      }
    } finally {
      listener.close();
    }
  }

  private async waitUntil(id: string, done: (o: Order | undefined) => boolean, until: number, signal?: AbortSignal): Promise<Order | undefined> {
    const listener = this.changes.listen(id);
    try {
      for (;;) {
        const order = await this.repo.get(id);
        const left = until - Date.now();
        if (done(order) || left <= 0 || signal?.aborted) return order;
        await listener.next(Math.min(POLL_MS, left), signal);
      }
    } finally {
      listener.close();
    }
  }
}

function encodePageToken(customerId: string, cursor: OrderCursor): string {
  return Buffer.from(JSON.stringify({ c: customerId, t: cursor.createdAt, i: cursor.id })).toString("base64url");
}

function decodePageToken(token: string, customerId: string): OrderCursor {
  let parsed: unknown;
  try {
    parsed = JSON.parse(Buffer.from(token, "base64url").toString("utf8"));
  } catch {
    throw new InvalidPageTokenError("page_token is malformed; restart from the first page");
  }
  const p = parsed as { c?: unknown; t?: unknown; i?: unknown };
  if (typeof p !== "object" || p === null || typeof p.c !== "string" || typeof p.t !== "number" || typeof p.i !== "string") {
    throw new InvalidPageTokenError("page_token is malformed; restart from the first page");
  }
  if (p.c !== customerId) throw new InvalidPageTokenError("page_token belongs to another customer; restart from the first page");
  return { createdAt: p.t, id: p.i };
}
