// Test support (not a test file): fake catalog, inventory and payments with simple state, fault
// injection per method, and the invariants checkout must keep. Served on real gRPC servers by tests.
import { create } from "@bufbuild/protobuf";
import { timestampNow } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError, type ServiceImpl } from "@connectrpc/connect";
import { ProductSchema, type CatalogService } from "../../../gen/catalog/v1/catalog_pb.js";
import { ReservationSchema, ReservationStatus, type InventoryService } from "../../../gen/inventory/v1/inventory_pb.js";
import { ErrorDetailSchema } from "../../../gen/meshwork/v1/errors_pb.js";
import { OrderStatus, type Order } from "../../../gen/orders/v1/orders_pb.js";
import { DeclineReason, PaymentSchema, PaymentStatus, type Payment, type PaymentService } from "../../../gen/payments/v1/payments_pb.js";
import { MoneySchema } from "../../../gen/common/v1/money_pb.js";

/** Test cards from payments.proto. */
export const CARDS = {
  ok: "4242424242424242",
  declined: "4000000000000002",
  insufficientFunds: "4000000000009995",
  processingError: "4000000000000119",
} as const;

function reasonError(message: string, code: Code, domain: string, reason: string, metadata: Record<string, string> = {}): ConnectError {
  return new ConnectError(message, code, undefined, [{ desc: ErrorDetailSchema, value: { reason, domain, metadata } }]);
}

/** Per-method fault injection: fail the next N calls with an error, or delay every call. */
export class Faults {
  private readonly failures = new Map<string, { times: number; error: () => ConnectError }>();
  private readonly delays = new Map<string, number>();
  /** Calls per method, faults included. */
  readonly calls = new Map<string, number>();

  /** The next `times` calls of `method` fail with `code` (Infinity: every call). */
  fail(method: string, times: number, code: Code = Code.Unavailable, make?: () => ConnectError): void {
    this.failures.set(method, { times, error: make ?? (() => new ConnectError(`injected ${Code[code]} in ${method}`, code)) });
  }

  delay(method: string, ms: number): void {
    this.delays.set(method, ms);
  }

  clear(): void {
    this.failures.clear();
    this.delays.clear();
  }

  /** Call at the start of every handler. */
  async enter(method: string): Promise<void> {
    this.calls.set(method, (this.calls.get(method) ?? 0) + 1);
    const ms = this.delays.get(method);
    if (ms) await new Promise((r) => setTimeout(r, ms));
    const f = this.failures.get(method);
    if (f && f.times > 0) {
      f.times--;
      throw f.error();
    }
  }
}

/** A catalog of fixed products. */
export class FakeCatalog {
  readonly faults = new Faults();
  readonly products = new Map<string, { name: string; currency: string; priceMinor: number; active: boolean }>();

  impl(): Partial<ServiceImpl<typeof CatalogService>> {
    return {
      getProduct: async (req) => {
        await this.faults.enter("GetProduct");
        const p = this.products.get(req.id);
        if (!p) throw reasonError(`product ${req.id} not found`, Code.NotFound, "catalog.v1", "ERROR_REASON_PRODUCT_NOT_FOUND", { product_id: req.id });
        return {
          product: create(ProductSchema, {
            id: req.id,
            sku: req.id.toUpperCase(),
            name: p.name,
            price: create(MoneySchema, { currencyCode: p.currency, amountMinor: BigInt(p.priceMinor) }),
            active: p.active,
          }),
        };
      },
    };
  }
}

type ReservationState = "RESERVED" | "COMMITTED" | "RELEASED";

/** One effect a fake applied (a real state change, not a repeated call). */
export interface Effect {
  op: string;
  id: string;
  orderId: string;
  seq: number;
}

let effectSeq = 0;

/** Inventory with available / reserved / sold per product: their sum never changes. */
export class FakeInventory {
  readonly faults = new Faults();
  readonly stock = new Map<string, { available: number; reserved: number; sold: number }>();
  readonly reservations = new Map<string, { orderId: string; items: { productId: string; quantity: number }[]; status: ReservationState }>();
  readonly effects: Effect[] = [];

  setStock(productId: string, units: number): void {
    this.stock.set(productId, { available: units, reserved: 0, sold: 0 });
  }

  impl(): Partial<ServiceImpl<typeof InventoryService>> {
    const view = (id: string) => {
      const r = this.reservations.get(id)!;
      const status = { RESERVED: ReservationStatus.RESERVED, COMMITTED: ReservationStatus.COMMITTED, RELEASED: ReservationStatus.RELEASED }[r.status];
      return create(ReservationSchema, { id, orderId: r.orderId, items: r.items, status, createTime: timestampNow() });
    };
    return {
      reserve: async (req) => {
        await this.faults.enter("Reserve");
        const existing = this.reservations.get(req.reservationId);
        if (existing) return { reservation: view(req.reservationId) };
        for (const it of req.items) {
          const s = this.stock.get(it.productId);
          if (!s) throw reasonError(`product ${it.productId} not tracked`, Code.NotFound, "inventory.v1", "ERROR_REASON_PRODUCT_NOT_FOUND", { product_id: it.productId });
          if (s.available < it.quantity) {
            throw reasonError(`only ${s.available} of ${it.productId} available`, Code.FailedPrecondition, "inventory.v1", "ERROR_REASON_INSUFFICIENT_STOCK", {
              product_id: it.productId,
              requested: String(it.quantity),
              available: String(s.available),
            });
          }
        }
        for (const it of req.items) {
          const s = this.stock.get(it.productId)!;
          s.available -= it.quantity;
          s.reserved += it.quantity;
        }
        this.reservations.set(req.reservationId, { orderId: req.orderId, items: req.items.map((i) => ({ productId: i.productId, quantity: i.quantity })), status: "RESERVED" });
        this.effects.push({ op: "reserve", id: req.reservationId, orderId: req.orderId, seq: ++effectSeq });
        return { reservation: view(req.reservationId) };
      },
      commitReservation: async (req) => {
        await this.faults.enter("CommitReservation");
        const r = this.reservations.get(req.reservationId);
        if (!r) throw reasonError("no such reservation", Code.NotFound, "inventory.v1", "ERROR_REASON_RESERVATION_NOT_FOUND");
        if (r.status === "RELEASED") throw reasonError("reservation released", Code.FailedPrecondition, "inventory.v1", "ERROR_REASON_RESERVATION_RELEASED");
        if (r.status === "RESERVED") {
          for (const it of r.items) {
            const s = this.stock.get(it.productId)!;
            s.reserved -= it.quantity;
            s.sold += it.quantity;
          }
          r.status = "COMMITTED";
          this.effects.push({ op: "commit", id: req.reservationId, orderId: r.orderId, seq: ++effectSeq });
        }
        return { reservation: view(req.reservationId) };
      },
      releaseReservation: async (req) => {
        await this.faults.enter("ReleaseReservation");
        const r = this.reservations.get(req.reservationId);
        if (!r) throw reasonError("no such reservation", Code.NotFound, "inventory.v1", "ERROR_REASON_RESERVATION_NOT_FOUND");
        if (r.status !== "RELEASED") {
          for (const it of r.items) {
            const s = this.stock.get(it.productId)!;
            if (r.status === "RESERVED") s.reserved -= it.quantity;
            else s.sold -= it.quantity;
            s.available += it.quantity;
          }
          r.status = "RELEASED";
          this.effects.push({ op: "release", id: req.reservationId, orderId: r.orderId, seq: ++effectSeq });
        }
        return { reservation: view(req.reservationId) };
      },
    };
  }
}

type PaymentState = "AUTHORIZED" | "CAPTURED" | "VOIDED" | "REFUNDED" | "DECLINED" | "FAILED";

/** Payments with idempotency keys and the test cards; `onAuthorized` can publish PaymentAuthorized. */
export class FakePayments {
  readonly faults = new Faults();
  readonly payments = new Map<string, { orderId: string; customerId: string; amountMinor: number; currency: string; status: PaymentState; decline: DeclineReason }>();
  readonly effects: Effect[] = [];
  private readonly keys = new Map<string, { request: string; paymentId: string }>();
  private next = 0;

  constructor(private readonly onAuthorized?: (p: { paymentId: string; orderId: string; customerId: string; amountMinor: number; currency: string }) => Promise<void>) {}

  impl(): Partial<ServiceImpl<typeof PaymentService>> {
    const view = (id: string): Payment => {
      const p = this.payments.get(id)!;
      return create(PaymentSchema, {
        id,
        orderId: p.orderId,
        customerId: p.customerId,
        amount: create(MoneySchema, { currencyCode: p.currency, amountMinor: BigInt(p.amountMinor) }),
        status: PaymentStatus[p.status],
        declineReason: p.decline,
      });
    };
    const once = (key: string, request: string, run: () => string): string => {
      const seen = this.keys.get(key);
      if (seen) {
        if (seen.request !== request) throw reasonError(`key ${key} reused`, Code.AlreadyExists, "payments.v1", "ERROR_REASON_IDEMPOTENCY_KEY_REUSED");
        return seen.paymentId;
      }
      const paymentId = run();
      this.keys.set(key, { request, paymentId });
      return paymentId;
    };
    const state = (id: string) => {
      const p = this.payments.get(id);
      if (!p) throw reasonError(`payment ${id} not found`, Code.NotFound, "payments.v1", "ERROR_REASON_PAYMENT_NOT_FOUND");
      return p;
    };
    const invalid = (id: string, status: string) =>
      reasonError(`payment ${id} is ${status}`, Code.FailedPrecondition, "payments.v1", "ERROR_REASON_INVALID_PAYMENT_STATE", { status });
    return {
      authorize: async (req) => {
        await this.faults.enter("Authorize");
        const amountMinor = Number(req.amount?.amountMinor ?? 0n);
        const currency = req.amount?.currencyCode ?? "";
        let created = false;
        const id = once(`authorize:${req.idempotencyKey}`, JSON.stringify([req.orderId, amountMinor, currency, req.cardNumber]), () => {
          const paymentId = `pay-${++this.next}`;
          const decline =
            req.cardNumber === CARDS.declined
              ? DeclineReason.GENERIC
              : req.cardNumber === CARDS.insufficientFunds
                ? DeclineReason.INSUFFICIENT_FUNDS
                : req.cardNumber === CARDS.processingError
                  ? DeclineReason.PROCESSING_ERROR
                  : DeclineReason.UNSPECIFIED;
          const status: PaymentState = decline === DeclineReason.UNSPECIFIED ? "AUTHORIZED" : decline === DeclineReason.PROCESSING_ERROR ? "FAILED" : "DECLINED";
          this.payments.set(paymentId, { orderId: req.orderId, customerId: req.customerId, amountMinor, currency, status, decline });
          if (status === "AUTHORIZED") this.effects.push({ op: "authorize", id: paymentId, orderId: req.orderId, seq: ++effectSeq });
          created = status === "AUTHORIZED";
          return paymentId;
        });
        if (created) await this.onAuthorized?.({ paymentId: id, orderId: req.orderId, customerId: req.customerId, amountMinor, currency });
        return { payment: view(id) };
      },
      capture: async (req) => {
        await this.faults.enter("Capture");
        const id = once(`capture:${req.idempotencyKey}`, req.paymentId, () => {
          const p = state(req.paymentId);
          if (p.status !== "AUTHORIZED" && p.status !== "CAPTURED") throw invalid(req.paymentId, p.status);
          if (p.status === "AUTHORIZED") {
            p.status = "CAPTURED";
            this.effects.push({ op: "capture", id: req.paymentId, orderId: p.orderId, seq: ++effectSeq });
          }
          return req.paymentId;
        });
        return { payment: view(id) };
      },
      void: async (req) => {
        await this.faults.enter("Void");
        const id = once(`void:${req.idempotencyKey}`, req.paymentId, () => {
          const p = state(req.paymentId);
          if (p.status !== "AUTHORIZED" && p.status !== "VOIDED") throw invalid(req.paymentId, p.status);
          if (p.status === "AUTHORIZED") {
            p.status = "VOIDED";
            this.effects.push({ op: "void", id: req.paymentId, orderId: p.orderId, seq: ++effectSeq });
          }
          return req.paymentId;
        });
        return { payment: view(id) };
      },
      refund: async (req) => {
        await this.faults.enter("Refund");
        const id = once(`refund:${req.idempotencyKey}`, req.paymentId, () => {
          const p = state(req.paymentId);
          if (p.status !== "CAPTURED") {
            throw reasonError(`payment ${req.paymentId} is ${p.status}`, Code.FailedPrecondition, "payments.v1", "ERROR_REASON_INVALID_PAYMENT_STATE", { status: p.status });
          }
          p.status = "REFUNDED";
          this.effects.push({ op: "refund", id: req.paymentId, orderId: p.orderId, seq: ++effectSeq });
          return req.paymentId;
        });
        const p = this.payments.get(id)!;
        return { payment: view(id), refundId: `ref-${id}`, amount: create(MoneySchema, { currencyCode: p.currency, amountMinor: BigInt(p.amountMinor) }) };
      },
      getPayment: async (req) => {
        await this.faults.enter("GetPayment");
        state(req.paymentId);
        return { payment: view(req.paymentId) };
      },
    };
  }
}

/**
 * Checks that stock and money balance against the orders' final states; returns the violations
 * (empty when consistent). `initialStock` is the units per product at the start.
 */
export function invariantViolations(orders: Order[], inventory: FakeInventory, payments: FakePayments, initialStock: Map<string, number>): string[] {
  const out: string[] = [];
  const soldByOrders = new Map<string, number>();
  let confirmedTotal = 0;
  for (const o of orders) {
    if (o.status === OrderStatus.PENDING) out.push(`order ${o.id} is still PENDING`);
    const reservation = inventory.reservations.get(`res-${o.id}`);
    const pays = [...payments.payments.entries()].filter(([, p]) => p.orderId === o.id);
    if (o.status === OrderStatus.CONFIRMED || o.status === OrderStatus.SHIPPED) {
      confirmedTotal += Number(o.total?.amountMinor ?? 0n);
      for (const it of o.items) soldByOrders.set(it.productId, (soldByOrders.get(it.productId) ?? 0) + it.quantity);
      if (reservation?.status !== "COMMITTED") out.push(`confirmed order ${o.id} has reservation ${reservation?.status}`);
      const captured = pays.filter(([, p]) => p.status === "CAPTURED");
      if (captured.length !== 1 || captured[0][0] !== o.paymentId) out.push(`confirmed order ${o.id} has captured payments ${captured.map(([id]) => id)}`);
      for (const [id, p] of pays) if (id !== o.paymentId && p.status === "AUTHORIZED") out.push(`confirmed order ${o.id} has a stray authorization ${id}`);
    } else {
      if (reservation && reservation.status !== "RELEASED") out.push(`${OrderStatus[o.status]} order ${o.id} holds reservation ${reservation.status}`);
      for (const [id, p] of pays) {
        if (p.status === "AUTHORIZED" || p.status === "CAPTURED") out.push(`${OrderStatus[o.status]} order ${o.id} holds payment ${id} ${p.status}`);
      }
    }
  }
  for (const [productId, initial] of initialStock) {
    const s = inventory.stock.get(productId)!;
    if (s.available + s.reserved + s.sold !== initial) out.push(`stock of ${productId} does not add up: ${JSON.stringify(s)} vs ${initial}`);
    if (s.reserved !== 0) out.push(`stock of ${productId} still has ${s.reserved} reserved`);
    if (s.sold !== (soldByOrders.get(productId) ?? 0)) out.push(`sold ${s.sold} of ${productId} but confirmed orders hold ${soldByOrders.get(productId) ?? 0}`);
  }
  const captured = [...payments.payments.values()].filter((p) => p.status === "CAPTURED").reduce((sum, p) => sum + p.amountMinor, 0);
  if (captured !== confirmedTotal) out.push(`captured ${captured} but confirmed orders total ${confirmedTotal}`);
  return out;
}
