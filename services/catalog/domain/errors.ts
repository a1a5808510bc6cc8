import { DomainError } from "../../../mesh/domain/index.js";
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

/** No product has the id. */
export class ProductNotFoundError extends DomainError {
  constructor(readonly productId: string) {
    super(`product ${productId} not found`, { product_id: productId });
  }
}

/** A page token is malformed or belongs to another query. */
export class InvalidPageTokenError extends DomainError {
  constructor(message: string) {
    super(message, { field: "page_token" });
  }
}

/** The search query is empty or too long. */
export class InvalidQueryError extends DomainError {
  constructor(message: string) {
    super(message, { field: "query" });
  }
}
