import { createHash } from "node:crypto";
import { InvalidItemsError, ValidationError } from "./errors.js";

/** Life cycle of an order (orders.v1.OrderStatus without the prefix). */
export type OrderStatus = "PENDING" | "CONFIRMED" | "SHIPPED" | "CANCELLED" | "FAILED";

/** Why checkout failed (orders.v1.ErrorReason names without the prefix). */
export type FailureReason =
  | "OUT_OF_STOCK"
  | "PAYMENT_DECLINED"
  | "PRICE_CHANGED"
  | "PRODUCT_NOT_FOUND"
  | "PRODUCT_INACTIVE"
  | "CURRENCY_MISMATCH"
  | "PAYMENT_FAILED";

/** One line of an order. Before pricing, `name` is empty and `unitPriceMinor` 0. */
export interface OrderItem {
  productId: string;
  name: string;
  quantity: number;
  unitPriceMinor: number;
  /** The price the customer was shown, if they sent one; checked against the catalog. */
  expectedUnitPriceMinor: number | null;
}

/** Why checkout failed, as stored and answered on every retry. */
export interface Failure {
  reason: FailureReason;
  /** True when a dependency stayed unavailable (the caller gets Unavailable, not FailedPrecondition). */
  retryable: boolean;
  message: string;
  metadata: Record<string, string>;
}

/** Forward steps of checkout, in order. */
export const FORWARD_STEPS = ["validate", "reserve", "authorize", "commit", "capture"] as const;
export type ForwardStep = (typeof FORWARD_STEPS)[number];

/** Compensations, in the order they run (the reverse of the steps they undo). */
export const COMPENSATIONS = ["settle_payment", "release_stock"] as const;
export type Compensation = (typeof COMPENSATIONS)[number];

/** "intent" is written before the remote call, "done" after its outcome is known. */
export type StepMark = "intent" | "done";

/** Where a saga is: moving forward, undoing, or finished (no work left). */
export type SagaPhase = "forward" | "compensating" | "finished";

/** What the saga ends with once its compensations are done. */
export type SagaOutcome =
  | { status: "FAILED"; failure: Failure }
  | { status: "CANCELLED"; reason: string; previousStatus: "PENDING" | "CONFIRMED" };

/** The persisted checkout saga of one order. */
export interface SagaState {
  phase: SagaPhase;
  steps: Partial<Record<ForwardStep | Compensation, StepMark>>;
  outcome?: SagaOutcome;
  /** Set by CancelOrder while checkout runs; honoured before the next forward step. */
  cancelRequested?: string;
}

/** An order with its saga. Amounts are integer minor units of `currency`. */
export interface Order {
  id: string;
  customerId: string;
  idempotencyKey: string;
  /** sha256 of the request without the card number, to detect a reused key. */
  requestHash: string;
  currency: string;
  items: OrderItem[];
  totalMinor: number;
  status: OrderStatus;
  failure: Failure | null;
  cancelReason: string;
  paymentId: string;
  reservationId: string;
  saga: SagaState;
  /** W3C traceparent of the CreateOrder call, so events of a resumed saga stay in its trace. */
  traceparent: string;
  /** Increases with every change; watchers use it to skip repeats. */
  version: number;
  createdAt: number;
  updatedAt: number;
}

/** What CreateOrder asks for, after transport decoding. */
export interface CreateOrderInput {
  idempotencyKey: string;
  customerId: string;
  currency: string;
  cardNumber: string;
  items: { productId: string; quantity: number; expectedUnitPrice?: { currency: string; amountMinor: number } }[];
}

// 200 characters fits a UUID or any sensible client key with room to spare and bounds the index.
const MAX_KEY_LENGTH = 200;
// 128 characters: the registry's id pattern allows as much; ids are opaque, not prose.
const MAX_ID_LENGTH = 128;
// 100 lines: more than any shop cart holds, and it bounds the catalog calls of one checkout.
export const MAX_ITEMS = 100;
// 10,000 units per line: far above a retail order, low enough that quantity × price stays exact.
export const MAX_QUANTITY = 10_000;

/** Checks CreateOrder's input; throws ValidationError or InvalidItemsError naming the problem. */
export function validateCreateInput(input: CreateOrderInput): void {
  requireId("idempotency_key", input.idempotencyKey, MAX_KEY_LENGTH);
  requireId("customer_id", input.customerId, MAX_ID_LENGTH);
  if (!/^[A-Z]{3}$/.test(input.currency)) {
    throw new ValidationError("currency_code", `currency_code "${input.currency}" must be three upper-case ISO 4217 letters`);
  }
  if (!isCardNumber(input.cardNumber)) {
    throw new ValidationError("card_number", "card_number must be 12 to 19 digits that pass the Luhn check");
  }
  if (input.items.length === 0) throw new InvalidItemsError("items must hold at least one line");
  if (input.items.length > MAX_ITEMS) throw new InvalidItemsError(`items has ${input.items.length} lines; at most ${MAX_ITEMS} are allowed`);
  const seen = new Set<string>();
  input.items.forEach((item, i) => {
    if (item.productId === "" || item.productId.length > MAX_ID_LENGTH) {
      throw new InvalidItemsError(`items[${i}].product_id must be 1 to ${MAX_ID_LENGTH} characters`, { index: String(i) });
    }
    if (seen.has(item.productId)) throw new InvalidItemsError(`product ${item.productId} appears more than once`, { product_id: item.productId });
    seen.add(item.productId);
    if (!Number.isInteger(item.quantity) || item.quantity < 1 || item.quantity > MAX_QUANTITY) {
      throw new InvalidItemsError(`items[${i}].quantity ${item.quantity} must be between 1 and ${MAX_QUANTITY}`, { product_id: item.productId });
    }
    const expected = item.expectedUnitPrice;
    if (expected) {
      if (expected.currency !== input.currency) {
        throw new ValidationError(`items[${i}].expected_unit_price`, `expected_unit_price currency "${expected.currency}" differs from currency_code "${input.currency}"`);
      }
      if (!Number.isSafeInteger(expected.amountMinor) || expected.amountMinor < 0) {
        throw new ValidationError(`items[${i}].expected_unit_price`, `expected_unit_price amount ${expected.amountMinor} must be a non-negative integer`);
      }
    }
  });
}

function requireId(field: string, value: string, max: number): void {
  if (value === "" || value.length > max) throw new ValidationError(field, `${field} must be 1 to ${max} characters, got ${value.length}`);
}

/** Digits only, 12 to 19 long, Luhn-valid: the shape payments accepts. */
export function isCardNumber(card: string): boolean {
  if (!/^\d{12,19}$/.test(card)) return false;
  let sum = 0;
  for (let i = 0; i < card.length; i++) {
    let d = card.charCodeAt(card.length - 1 - i) - 48;
    if (i % 2 === 1) {
      d *= 2;
      if (d > 9) d -= 9;
    }
    sum += d;
  }
  return sum % 10 === 0;
}

/**
 * Fingerprint of a CreateOrder request for idempotency. The card number is left out on purpose:
 * a hash of a 16-digit number is easily reversed, and orders must never store card data.
 */
export function requestHash(input: CreateOrderInput): string {
  const canonical = JSON.stringify({
    c: input.customerId,
    cur: input.currency,
    i: input.items.map((it) => [it.productId, it.quantity, it.expectedUnitPrice ? it.expectedUnitPrice.amountMinor : null]),
  });
  return createHash("sha256").update(canonical).digest("hex");
}

/** Sum of quantity × unit price; throws RangeError past Number.MAX_SAFE_INTEGER. */
export function orderTotal(items: readonly OrderItem[]): number {
  const total = items.reduce((sum, it) => sum + it.quantity * it.unitPriceMinor, 0);
  if (!Number.isSafeInteger(total)) throw new RangeError(`order total ${total} exceeds the exact integer range`);
  return total;
}

/** Statuses no change leaves (except SHIPPED, set by fulfilment). */
export function isFinal(status: OrderStatus): boolean {
  return status === "CANCELLED" || status === "FAILED";
}

/** Reservation id of an order: derived, so a retried Reserve is the same reservation. */
export function reservationIdOf(orderId: string): string {
  return `res-${orderId}`;
}

/** Idempotency key of one payment operation of an order: derived from the order and the step. */
export function paymentKey(orderId: string, step: "authorize" | "capture" | "void" | "refund", paymentId?: string): string {
  return paymentId ? `${orderId}:${step}:${paymentId}` : `${orderId}:${step}`;
}
