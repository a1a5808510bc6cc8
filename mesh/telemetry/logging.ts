import { Code, ConnectError } from "@connectrpc/connect";
import { isSpanContextValid, SpanKind, SpanStatusCode, trace } from "@opentelemetry/api";
import { hrTimeToMilliseconds } from "@opentelemetry/core";
import type { ReadableSpan, SpanProcessor } from "@opentelemetry/sdk-trace-base";
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

// Spans that stand for one unit of work a process did for a request: a call served, a message
// published or processed. Client and internal spans would only repeat what these say.
const LOGGED_KINDS: Record<number, string> = { [SpanKind.SERVER]: "server", [SpanKind.PRODUCER]: "producer", [SpanKind.CONSUMER]: "consumer" };

/**
 * A span processor that writes one debug line (`msg: "span"`) per finished server, producer and
 * consumer span: name, kind, duration, gRPC status code, and the span's own `trace_id`/`span_id`.
 * So with LOG_LEVEL=debug every process a request touched has a log line carrying its trace id,
 * even services whose handlers log nothing. startTelemetry installs it only when the logger's
 * level enables debug, so at the default level it costs nothing.
 */
export function spanLogProcessor(logger: Logger): SpanProcessor {
  return {
    onStart: () => undefined,
    onEnd(span: ReadableSpan) {
      const kind = LOGGED_KINDS[span.kind];
      if (kind === undefined || !logger.isLevelEnabled("debug")) return;
      const sc = span.spanContext();
      const code = span.attributes["rpc.grpc.status_code"];
      logger.debug(
        {
          trace_id: sc.traceId,
          span_id: sc.spanId,
          ...(span.parentSpanContext ? { parent_span_id: span.parentSpanContext.spanId } : {}),
          span: span.name,
          kind,
          duration_ms: Math.round(hrTimeToMilliseconds(span.duration) * 1000) / 1000,
          ...(code !== undefined ? { code } : {}),
          ...(span.status.code === SpanStatusCode.ERROR ? { error: span.status.message ?? "error" } : {}),
        },
        "span",
      );
    },
    forceFlush: () => Promise.resolve(),
    shutdown: () => Promise.resolve(),
  };
}
