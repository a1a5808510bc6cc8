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

/** A page token is malformed or belongs to another customer. */
export class InvalidPageTokenError extends DomainError {
  constructor(message: string) {
    super(message, { field: "page_token" });
  }
}
