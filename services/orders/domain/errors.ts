import { DomainError } from "../../../mesh/domain/index.js";
import type { FailureReason } from "./order.js";

export { DomainError };

/** A request field is missing or out of range. */
export class ValidationError extends DomainError {
  constructor(
    readonly field: string,
    message: string,
  ) {
    super(message, { field });
  }
}

/** The items are empty, repeat a product or have a bad quantity. */
export class InvalidItemsError extends DomainError {
  constructor(message: string, metadata: Record<string, string> = {}) {
    super(message, { field: "items", ...metadata });
  }
}

/** No order has the id. */
export class OrderNotFoundError extends DomainError {
  constructor(readonly orderId: string) {
    super(`order ${orderId} not found`, { order_id: orderId });
  }
}

/** The order's status does not allow cancelling. */
export class NotCancellableError extends DomainError {
  constructor(orderId: string, status: string) {
    super(`order ${orderId} is ${status} and cannot be cancelled`, { order_id: orderId, status });
  }
}

/** The idempotency key was used before with a different request. */
export class IdempotencyKeyReusedError extends DomainError {
  constructor(key: string, orderId: string) {
    super(`idempotency key ${key} was already used for order ${orderId} with a different request`, { idempotency_key: key, order_id: orderId });
  }
}

/** A page token is malformed or belongs to another customer. */
export class InvalidPageTokenError extends DomainError {
  constructor(message: string) {
    super(message, { field: "page_token" });
  }
}

/**
 * Checkout ended FAILED. `retryable` failures come from a dependency that stayed unavailable
 * (Unavailable for the caller); the others are business outcomes (FailedPrecondition).
 */
export class CheckoutFailedError extends DomainError {
  constructor(
    readonly orderId: string,
    readonly reason: FailureReason,
    readonly retryable: boolean,
    message: string,
    metadata: Record<string, string>,
  ) {
    super(message, { ...metadata, order_id: orderId });
  }
}

/** Checkout could not price the items because the catalog stayed unavailable; nothing was kept. */
export class CheckoutUnavailableError extends DomainError {
  constructor(message: string) {
    super(message);
  }
}
