import { Code, ConnectError } from "@connectrpc/connect";
import { codeToHttpStatus, errorToJson } from "@connectrpc/connect/protocol-connect";
import type { OutgoingHttpHeaders } from "node:http";
import { AttemptError } from "../mesh/grpc/index.js";

/**
 * How the gateway reports errors on the HTTP side. One table maps codes to statuses: connect-es's
 * `codeToHttpStatus` (InvalidArgument/FailedPrecondition/OutOfRange 400, Unauthenticated 401,
 * PermissionDenied 403, NotFound 404, AlreadyExists/Aborted 409, ResourceExhausted 429,
 * Canceled 499, Unknown/Internal/DataLoss 500, Unimplemented 501, Unavailable 503,
 * DeadlineExceeded 504), so the fast path, REST and connect-node always agree. Bodies are
 * Connect's error JSON `{code, message, details}` and never carry a stack trace.
 */
export { codeToHttpStatus };

/** Error metadata that becomes HTTP response headers; everything else stays inside. */
const PUBLIC_ERROR_HEADERS = ["retry-after", "www-authenticate"];

/**
 * The error a client may see. A ConnectError keeps its code, message and details but loses its
 * metadata (a backend's trailers must not leak out, and grpc-status in metadata would confuse
 * gRPC clients). Anything else is a gateway bug: Internal with a fixed message.
 */
export function publicError(e: unknown): ConnectError {
  // mesh/client surfaces a stream that fails after its first message as the attempt's wrapper.
  const err = e instanceof AttemptError ? e.error : e;
  if (!(err instanceof ConnectError)) return new ConnectError("internal error", Code.Internal);
  const meta = new Headers();
  for (const h of PUBLIC_ERROR_HEADERS) {
    const v = err.metadata.get(h);
    if (v !== null) meta.set(h, v);
  }
  const out = new ConnectError(err.rawMessage, err.code, meta, undefined, err.cause);
  out.details = err.details;
  return out;
}

/** Status, headers and body of a Connect-style JSON error response. */
export function jsonErrorResponse(err: ConnectError): { status: number; headers: OutgoingHttpHeaders; body: string } {
  const headers: OutgoingHttpHeaders = { "content-type": "application/json" };
  for (const h of PUBLIC_ERROR_HEADERS) {
    const v = err.metadata.get(h);
    if (v !== null) headers[h] = v;
  }
  return { status: codeToHttpStatus(err.code), headers, body: JSON.stringify(errorToJson(err, undefined)) };
}

/** Headers of a gRPC / gRPC-Web trailers-only error response (HTTP 200, status in headers). */
export function grpcErrorHeaders(err: ConnectError, grpcWeb: boolean): OutgoingHttpHeaders {
  const headers: OutgoingHttpHeaders = {
    "content-type": grpcWeb ? "application/grpc-web+proto" : "application/grpc",
    "grpc-status": String(err.code),
    "grpc-message": encodeURIComponent(err.rawMessage),
  };
  for (const h of PUBLIC_ERROR_HEADERS) {
    const v = err.metadata.get(h);
    if (v !== null) headers[h] = v;
  }
  return headers;
}
