/**
 * Observability runtime: OpenTelemetry traces (our own gRPC server middleware and client
 * interceptor, HTTP wrapper for the gateway, messaging spans for events), RED metrics served in
 * the Prometheus format with a rolling per-method summary, recent spans in memory, and pino logs
 * that carry the active trace id. See README.md in this folder for the metric table.
 */
export { startTelemetry, currentTelemetry, type Telemetry, type TelemetryOptions } from "./telemetry.js";
export { type SpanRecord, SpanRing, toSpanRecord } from "./span-ring.js";
export {
  tracingMiddleware,
  tracingInterceptor,
  recordAttempt,
  recordRetryThrottled,
  recordBreakerRejection,
  instrumentPolicy,
  recordEjection,
  recordEvent,
  defaultTarget,
  tracer,
  ATTR,
  TRACER_NAME,
  type TracingInterceptorOptions,
} from "./rpc-tracing.js";
export {
  meshMetrics,
  registerGauge,
  registerObservedCounter,
  observeRegistration,
  observeClient,
  observeOutbox,
  observeDlq,
  codeName,
  rollingStats,
  METRIC,
  BreakerState,
  DURATION_BUCKETS_SECONDS,
  type BreakerStateValue,
  type RegistrationLike,
  type BalancerLike,
} from "./metrics.js";
export { RollingStats, WINDOW_MINUTES, type SummaryEntry, type CallKind } from "./rolling-stats.js";
export { startMetricsServer, type MetricsServer, type MetricsServerOptions } from "./metrics-server.js";
export { createLogger, traceFields, spanLogProcessor, type Logger, type LoggerOptions } from "./logging.js";
export { traceHttpRequests, type HttpTracingOptions, type HttpRequestTrace } from "./http-tracing.js";
export {
  injectTraceHeaders,
  extractTraceContext,
  withExtractedContext,
  traceMessagingPublish,
  traceMessagingProcess,
  traceDetached,
  type HeaderCarrier,
  type MessageInfo,
  type ConsumedMessage,
} from "./messaging.js";
