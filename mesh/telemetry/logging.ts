import { Code, ConnectError } from "@connectrpc/connect";
import { isSpanContextValid, trace } from "@opentelemetry/api";
import pino, { type DestinationStream, type Logger } from "pino";

export type { Logger } from "pino";

const LEVELS = ["fatal", "error", "warn", "info", "debug", "trace", "silent"];

/** Options for {@link createLogger}. */
export interface LoggerOptions {
  service: string;
  instance: string;
  /** Default: LOG_LEVEL, else "info". One of fatal, error, warn, info, debug, trace, silent. */
  level?: string;
  /** Where lines go; default stdout. Tests pass an object with `write(line)`. */
  destination?: DestinationStream;
}

/** The trace_id/span_id of the active span, for log lines; empty outside a span. */
export function traceFields(): { trace_id?: string; span_id?: string } {
  const sc = trace.getActiveSpan()?.spanContext();
  return sc && isSpanContextValid(sc) ? { trace_id: sc.traceId, span_id: sc.spanId } : {};
}

/**
 * A pino logger writing one JSON object per line with `service`, `instance`, an ISO `time`, the
 * level as a word, and `trace_id`/`span_id` of the span active where the line is written (so a
 * log search by trace id finds every line of a request, across processes). An invalid level fails
 * at once, naming LOG_LEVEL when it came from there.
 */
export function createLogger(opts: LoggerOptions): Logger {
  const fromEnv = opts.level === undefined && process.env.LOG_LEVEL?.trim();
  const level = opts.level ?? (fromEnv || "info");
  if (!LEVELS.includes(level)) {
    throw new ConnectError(`${fromEnv ? "LOG_LEVEL" : "log level"} must be one of ${LEVELS.join(", ")}, got '${level}'`, Code.InvalidArgument);
  }
  const options: pino.LoggerOptions = {
    level,
    base: { service: opts.service, instance: opts.instance, pid: process.pid },
    timestamp: pino.stdTimeFunctions.isoTime,
    formatters: { level: (label) => ({ level: label }) },
    mixin: traceFields,
  };
  return opts.destination ? pino(options, opts.destination) : pino(options);
}

/** One request as the access log records it. */
export interface AccessLogEntry {
  method: string;
  path: string;
  status: number;
  durationMs: number;
  requestId?: string;
  traceId?: string;
}

/**
 * Writes one access-log line (`msg: "access"`): method, path, status, duration_ms, request_id,
 * trace_id. 5xx at error level, everything else at info (4xx are the client's problem; a fuzzer
 * must not flood the warn level).
 */
export function logAccess(logger: Logger, e: AccessLogEntry): void {
  const line = {
    method: e.method,
    path: e.path,
    status: e.status,
    duration_ms: Math.round(e.durationMs * 1000) / 1000,
    ...(e.requestId ? { request_id: e.requestId } : {}),
    ...(e.traceId ? { trace_id: e.traceId } : {}),
  };
  if (e.status >= 500) logger.error(line, "access");
  else logger.info(line, "access");
}
