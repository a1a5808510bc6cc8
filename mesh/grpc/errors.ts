import type { DescEnum } from "@bufbuild/protobuf";
import { Code, ConnectError } from "@connectrpc/connect";
import { ErrorDetailSchema } from "../../gen/meshwork/v1/errors_pb.js";
import { findTrailerError, setTrailerStatus } from "@connectrpc/connect/protocol-grpc";
import { Metadata, status as GrpcStatus, type ServiceError, type StatusObject } from "@grpc/grpc-js";
import { headersToMetadata, metadataToHeaders } from "./metadata.js";

/**
 * Turns anything a handler threw into a gRPC status. ConnectError keeps its code, message,
 * metadata and details (as grpc-status-details-bin); anything else is Internal, with the message
 * but never a stack trace.
 */
export function toGrpcStatus(err: unknown): Partial<StatusObject> {
  const ce = err instanceof ConnectError ? err : new ConnectError(err instanceof Error ? err.message : String(err), Code.Internal);
  // setTrailerStatus copies the error's own metadata in; starting from it would send each value twice.
  const trailer = setTrailerStatus(new Headers(), ce);
  const metadata = headersToMetadata(trailer);
  // grpc-js writes grpc-status and grpc-message itself from code and details.
  return { code: ce.code as number as GrpcStatus, details: ce.rawMessage, metadata };
}

/** Turns a grpc-js client error into a ConnectError with the same code, message, metadata and details. */
export function fromGrpcError(err: unknown): ConnectError {
  if (err instanceof ConnectError) return err;
  const se = err as Partial<ServiceError>;
  if (typeof se?.code !== "number") return ConnectError.from(err, Code.Internal);
  const trailer = metadataToHeaders(se.metadata ?? new Metadata());
  trailer.set("grpc-status", String(se.code));
  trailer.set("grpc-message", encodeURIComponent(se.details ?? ""));
  const found = findTrailerError(trailer);
  if (found) return found;
  return new ConnectError(se.details ?? "", se.code as number as Code, trailer);
}

/**
 * A ConnectError carrying a `meshwork.v1.ErrorDetail` whose reason is the value name of a domain's
 * `ErrorReason` enum (e.g. "ERROR_REASON_OUT_OF_STOCK") and whose domain is the enum's package
 * ("inventory.v1"), so clients can switch on the reason instead of parsing the message.
 */
export function errorWithReason(message: string, code: Code, reasonEnum: DescEnum, reason: number, metadata: Record<string, string> = {}): ConnectError {
  const domain = reasonEnum.typeName.slice(0, reasonEnum.typeName.lastIndexOf("."));
  const name = reasonEnum.value[reason]?.name ?? String(reason);
  return new ConnectError(message, code, undefined, [{ desc: ErrorDetailSchema, value: { reason: name, domain, metadata } }]);
}
