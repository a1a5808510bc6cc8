import { DomainError } from "../../../mesh/domain/index.js";
import type { PaymentStatus } from "./model.js";

export { DomainError };

/**
 * A request field is missing or malformed. `kind` names the contract's reason when there is one:
 * an invalid amount, an invalid card, or an amount in another currency than the payment's.
 */
export class ValidationError extends DomainError {
  constructor(
    readonly field: string,
    message: string,
    readonly kind?: "amount" | "card" | "currency-mismatch",
  ) {
    super(message, { field });
  }
}

/** No payment has the id. */
export class PaymentNotFoundError extends DomainError {
  constructor(readonly paymentId: string) {
    super(`payment ${paymentId} not found`, { payment_id: paymentId });
  }
}

/** The operation is not allowed in the payment's status. */
export class InvalidPaymentStateError extends DomainError {
  constructor(
    readonly paymentId: string,
    readonly status: PaymentStatus,
    readonly operation: string,
  ) {
    super(`cannot ${operation} payment ${paymentId} in status ${status}`, { payment_id: paymentId, status });
  }
}

/** The refund is larger than what remains of the captured amount. */
export class RefundExceedsCapturedError extends DomainError {
  constructor(
    readonly paymentId: string,
    readonly requestedMinor: number,
    readonly refundableMinor: number,
  ) {
    super(`refund of ${requestedMinor} exceeds the ${refundableMinor} still refundable on payment ${paymentId}`, {
      payment_id: paymentId,
      refundable_amount_minor: String(refundableMinor),
    });
  }
}

/** The idempotency key was used before with a different request. */
export class IdempotencyKeyReusedError extends DomainError {
  constructor(
    readonly operation: string,
    readonly key: string,
  ) {
    super(`idempotency key ${key} was already used for a different ${operation} request`, { idempotency_key: key });
  }
}

/**
 * A concurrent call with the same idempotency key committed first; raised by the repository so the
 * use case answers from the stored result. Never leaves the domain.
 */
export class OperationRaceError extends DomainError {
  constructor(readonly key: string) {
    super(`idempotency key ${key} was used concurrently`);
  }
}
