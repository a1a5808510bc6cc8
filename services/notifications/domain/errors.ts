/** Base of every notifications domain error; routes map each subclass to a gRPC code and reason. */
export abstract class DomainError extends Error {
  /** Facts for the error detail (lower_snake_case keys, no secrets). */
  readonly metadata: Record<string, string>;
  constructor(message: string, metadata: Record<string, string> = {}) {
    super(message);
    this.name = new.target.name;
    this.metadata = metadata;
  }
}

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
