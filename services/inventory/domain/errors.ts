import { DomainError } from "../../../mesh/domain/index.js";
export { DomainError };

/** A request field is missing or out of range. `invalidItems` marks problems with the item list. */
export class ValidationError extends DomainError {
  constructor(
    readonly field: string,
    message: string,
    readonly invalidItems = false,
  ) {
    super(message, { field });
  }
}

/** Inventory does not track the product. */
export class ProductNotFoundError extends DomainError {
  constructor(readonly productId: string) {
    super(`product ${productId} is not tracked by inventory`, { product_id: productId });
  }
}

/** An item asks for more than is available. */
export class InsufficientStockError extends DomainError {
  constructor(
    readonly productId: string,
    readonly requested: number,
    readonly available: number,
  ) {
    super(`product ${productId}: requested ${requested}, available ${available}`, {
      product_id: productId,
      requested: String(requested),
      available: String(available),
    });
  }
}

/** No reservation has the id. */
export class ReservationNotFoundError extends DomainError {
  constructor(readonly reservationId: string) {
    super(`reservation ${reservationId} not found`, { reservation_id: reservationId });
  }
}

/** The reservation expired before it was committed. */
export class ReservationExpiredError extends DomainError {
  constructor(readonly reservationId: string) {
    super(`reservation ${reservationId} expired before it was committed`, { reservation_id: reservationId });
  }
}

/** The reservation was released and cannot be committed. */
export class ReservationReleasedError extends DomainError {
  constructor(readonly reservationId: string) {
    super(`reservation ${reservationId} was released and cannot be committed`, { reservation_id: reservationId });
  }
}

/** The reservation id was reused with a different order or items. */
export class ReservationConflictError extends DomainError {
  constructor(readonly reservationId: string) {
    super(`reservation ${reservationId} already exists with a different order or items`, { reservation_id: reservationId });
  }
}

/**
 * A concurrent Reserve created the same reservation id first; the repository raises it so the use
 * case can retry and answer from the stored reservation. Never leaves the domain.
 */
export class ReservationRaceError extends DomainError {
  constructor(readonly reservationId: string) {
    super(`reservation ${reservationId} was created concurrently`, { reservation_id: reservationId });
  }
}

/** The server is draining: open watch streams end so clients reconnect elsewhere. */
export class WatchClosedError extends DomainError {
  constructor() {
    super("inventory is shutting down; watch again");
  }
}
