/**
 * The adapter between protobuf-es descriptors and @grpc/grpc-js: service definitions, a server
 * implementation from a Connect `ServiceImpl`, per-attempt client calls, and status mapping.
 */
export { grpcServiceDefinition, methodPath } from "./definition.js";
export {
  grpcImplementation,
  onCallAbort,
  observeCall,
  callDeadlineScope,
  requestHeaderValue,
  requestHeaderKeys,
  type AdapterOptions,
  type CallObserver,
  type ServerMiddleware,
} from "./server-adapter.js";
export { unaryCall, serverStreamCall, AttemptError, LazyUnaryResult, NEVER_ABORTED, type CallOptions, type UnaryResult, type StreamResult } from "./client-call.js";
export { toGrpcStatus, fromGrpcError, errorWithReason } from "./errors.js";
export { headersToMetadata, metadataToHeaders, setMetadataHeader } from "./metadata.js";
