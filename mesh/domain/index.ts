/**
 * The base of every service's domain errors. Plain TypeScript: domains stay free of gRPC; each
 * service's routes map its subclasses to a code and an `ErrorReason` (see errorWithReason in
 * mesh/grpc).
 */
export abstract class DomainError extends Error {
  /** Facts for the error detail: lower_snake_case keys, never secrets or card data. */
  readonly metadata: Record<string, string>;
  constructor(message: string, metadata: Record<string, string> = {}) {
    super(message);
    this.name = new.target.name;
    this.metadata = metadata;
  }
}
