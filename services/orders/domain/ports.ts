/**
 * What checkout needs from catalog, inventory and payments, in domain terms. The transport adapter
 * (../clients.ts) implements it over the services' gRPC contracts.
 */

/** A catalog product as checkout sees it. */
export interface ProductInfo {
  id: string;
  name: string;
  currency: string;
  priceMinor: number;
  active: boolean;
}

/** payments.v1.PaymentStatus without the prefix. */
export type PaymentStatus = "AUTHORIZED" | "CAPTURED" | "VOIDED" | "REFUNDED" | "PARTIALLY_REFUNDED" | "DECLINED" | "FAILED" | "UNSPECIFIED";

/** A payment as checkout sees it. */
export interface PaymentInfo {
  id: string;
  status: PaymentStatus;
  /** payments.v1.DeclineReason without the prefix; empty unless DECLINED or FAILED. */
  declineReason: string;
}

/**
 * A remote call failed. `transient` errors (unavailable, timeout, aborted, overloaded, internal)
 * may succeed when repeated; the others are the remote service's final answer.
 */
export class RemoteError extends Error {
  constructor(
    message: string,
    /** The gRPC code name, e.g. "FailedPrecondition". */
    readonly code: string,
    readonly transient: boolean,
    /** The remote ErrorReason name, e.g. "ERROR_REASON_INSUFFICIENT_STOCK"; empty when none. */
    readonly reason: string,
    readonly metadata: Record<string, string>,
  ) {
    super(message);
    this.name = "RemoteError";
  }
}

/** Remote operations of checkout. Each takes an explicit timeout: saga work outlives requests. */
export interface CheckoutPorts {
  /** The product, or undefined when the catalog does not know the id. */
  getProduct(productId: string, timeoutMs: number): Promise<ProductInfo | undefined>;
  /** Holds stock; idempotent by reservationId. */
  reserve(req: { reservationId: string; orderId: string; items: { productId: string; quantity: number }[] }, timeoutMs: number): Promise<void>;
  commitReservation(reservationId: string, timeoutMs: number): Promise<void>;
  /** Gives the stock back; "not_found" when no such reservation exists (nothing to release). */
  releaseReservation(reservationId: string, reason: string, timeoutMs: number): Promise<"released" | "not_found">;
  /** A decline is a result (status DECLINED or FAILED), not an error. */
  authorize(
    req: { idempotencyKey: string; orderId: string; customerId: string; currency: string; amountMinor: number; cardNumber: string },
    timeoutMs: number,
  ): Promise<PaymentInfo>;
  capture(idempotencyKey: string, paymentId: string, timeoutMs: number): Promise<PaymentInfo>;
  void(idempotencyKey: string, paymentId: string, timeoutMs: number): Promise<PaymentInfo>;
  /** Refunds everything not yet refunded. */
  refund(idempotencyKey: string, paymentId: string, reason: string, timeoutMs: number): Promise<PaymentInfo>;
  /** The payment, or undefined when payments does not know the id. */
  getPayment(paymentId: string, timeoutMs: number): Promise<PaymentInfo | undefined>;
}
