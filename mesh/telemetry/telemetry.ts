import { Code, ConnectError } from "@connectrpc/connect";
import { context, metrics, propagation, ROOT_CONTEXT, trace, type Context, type TextMapPropagator } from "@opentelemetry/api";
import { AsyncLocalStorageContextManager } from "@opentelemetry/context-async-hooks";
import { CompositePropagator, W3CBaggagePropagator, W3CTraceContextPropagator } from "@opentelemetry/core";
import { PrometheusExporter, PrometheusSerializer } from "@opentelemetry/exporter-prometheus";
import { defaultResource, detectResources, envDetector, resourceFromAttributes } from "@opentelemetry/resources";
import {
  AggregationTemporality,
  ConsoleMetricExporter,
  InstrumentType,
  MeterProvider,
  PeriodicExportingMetricReader,
  type IMetricReader,
  type PushMetricExporter,
} from "@opentelemetry/sdk-metrics";
import { BasicTracerProvider, BatchSpanProcessor, ConsoleSpanExporter, SimpleSpanProcessor, type SpanExporter, type SpanProcessor } from "@opentelemetry/sdk-trace-base";
import { ATTR_SERVICE_NAME, ATTR_SERVICE_VERSION } from "@opentelemetry/semantic-conventions";
import { ambientStorage, keepDeadlineScope } from "../deadline/index.js";
import { createLogger, spanLogProcessor, type Logger } from "./logging.js";
import { bindMeter, HistogramReader } from "./metrics.js";
import { TRACER_NAME } from "./rpc-tracing.js";
import { SpanRing, type SpanRecord } from "./span-ring.js";

// Stable attribute, but exported only from the incubating entry point in semconv 1.45.
const ATTR_SERVICE_INSTANCE_ID = "service.instance.id";

// 2,000 spans: a checkout is ~10–15 spans across the mesh, so this keeps the last ~150 requests of
// this process for the console, at roughly 1–2 KiB each (a few MiB, bounded).
const DEFAULT_RECENT_SPANS = 2_000;

/** Options for {@link startTelemetry}. */
export interface TelemetryOptions {
  serviceName: string;
  instanceId: string;
  version?: string;
  /** Finished spans kept in memory for {@link Telemetry.recentSpans}. Default 2,000. */
  recentSpanLimit?: number;
  /** Environment to read OTEL_* settings from; default `process.env`. */
  env?: NodeJS.ProcessEnv;
  /**
   * Where the per-span debug lines go (see `spanLogProcessor`); default a `createLogger` of this
   * service at LOG_LEVEL. Lines are written only when its level enables debug.
   */
  logger?: Logger;
}

/** A running telemetry setup (one per process). */
export interface Telemetry {
  readonly serviceName: string;
  readonly instanceId: string;
  readonly version: string;
  /** Exporters in use besides the in-memory ring and /metrics, e.g. `{ traces: ["otlp"], metrics: [] }`. */
  readonly exporters: { traces: string[]; metrics: string[] };
  /** Recently finished spans of this process, oldest first; those ended after `sinceMs` (epoch ms) when given. */
  recentSpans(sinceMs?: number): SpanRecord[];
  /** Forgets the recent spans (tests). */
  clearRecentSpans(): void;
  /** All metrics in the Prometheus text exposition format (what `/metrics` serves). */
  prometheusText(): Promise<string>;
  /** Exports whatever is buffered (OTLP). */
  forceFlush(): Promise<void>;
  /** Flushes and stops exporters and unregisters the global providers; idempotent. */
  shutdown(): Promise<void>;
}

let running: Telemetry | undefined;

/**
 * OpenTelemetry's AsyncLocalStorage context manager over mesh/deadline's storage instead of a
 * storage of its own: one AsyncLocalStorage in the process, paid once per promise instead of
 * twice. The deadline scope lives in the same store; a context switch keeps it
 * ({@link keepDeadlineScope}), so trace context and deadline stay independent as before. Event
 * emitter and function binding are inherited (they go through `with`).
 */
class MeshContextManager extends AsyncLocalStorageContextManager {
  override active(): Context {
    return ambientStorage.getStore() ?? ROOT_CONTEXT;
  }

  override with<A extends unknown[], F extends (...args: A) => ReturnType<F>>(ctx: Context, fn: F, thisArg?: ThisParameterType<F>, ...args: A): ReturnType<F> {
    const cb = thisArg == null ? fn : (fn.bind(thisArg) as F);
    return ambientStorage.run(keepDeadlineScope(ctx), cb, ...args);
  }

  override attach(ctx: Context): { dispose(): void } {
    const previous = ambientStorage.getStore();
    ambientStorage.enterWith(keepDeadlineScope(ctx));
    let disposed = false;
    return {
      dispose() {
        if (disposed) return;
        disposed = true;
        ambientStorage.enterWith(previous ?? ROOT_CONTEXT);
      },
    };
  }

  /** The storage stays: mesh/deadline keeps using it after telemetry stops. */
  override disable(): this {
    return this;
  }
}

/** The telemetry started by {@link startTelemetry}, if any. */
export function currentTelemetry(): Telemetry | undefined {
  return running;
}

function list(env: NodeJS.ProcessEnv, name: string): string[] | undefined {
  const raw = env[name]?.trim();
  if (!raw) return undefined;
  return raw.split(",").map((s) => s.trim().toLowerCase()).filter(Boolean);
}

/**
 * Which exporters a signal uses. Standard variables, with one deliberate difference from the
 * OpenTelemetry default: with nothing set we export nothing (instead of OTLP to localhost:4318,
 * which fails noisily on a laptop), and setting an OTLP endpoint alone turns OTLP on.
 */
function exportersFor(env: NodeJS.ProcessEnv, signal: "TRACES" | "METRICS", allowed: string[]): string[] {
  const variable = `OTEL_${signal}_EXPORTER`;
  const asked = list(env, variable);
  if (asked === undefined) return env.OTEL_EXPORTER_OTLP_ENDPOINT?.trim() || env[`OTEL_EXPORTER_OTLP_${signal}_ENDPOINT`]?.trim() ? ["otlp"] : [];
  if (asked.includes("none")) return [];
  for (const a of asked) {
    if (!allowed.includes(a)) throw new ConnectError(`${variable} value '${a}' is not supported (use ${allowed.join(", ")} or none)`, Code.InvalidArgument);
  }
  return [...new Set(asked)];
}

function otlpProtocol(env: NodeJS.ProcessEnv, signal: "TRACES" | "METRICS"): "grpc" | "http/json" | "http/protobuf" {
  const specific = `OTEL_EXPORTER_OTLP_${signal}_PROTOCOL`;
  const variable = env[specific]?.trim() ? specific : "OTEL_EXPORTER_OTLP_PROTOCOL";
  const p = env[variable]?.trim() || "http/protobuf";
  if (p !== "grpc" && p !== "http/json" && p !== "http/protobuf") {
    throw new ConnectError(`${variable} must be grpc, http/json or http/protobuf, got '${p}'`, Code.InvalidArgument);
  }
  return p;
}

// The OTLP exporters come with sdk-node; they are required only when configured, because they
// pull in protobuf and HTTP client code a process without a collector never needs. They read
// their endpoint, headers and timeouts from the standard OTEL_EXPORTER_OTLP_* variables.
function otlpTraceExporter(protocol: string): SpanExporter {
  if (protocol === "grpc") return new (require("@opentelemetry/exporter-trace-otlp-grpc") as typeof import("@opentelemetry/exporter-trace-otlp-grpc")).OTLPTraceExporter();
  if (protocol === "http/json") return new (require("@opentelemetry/exporter-trace-otlp-http") as typeof import("@opentelemetry/exporter-trace-otlp-http")).OTLPTraceExporter();
  return new (require("@opentelemetry/exporter-trace-otlp-proto") as typeof import("@opentelemetry/exporter-trace-otlp-proto")).OTLPTraceExporter();
}

function otlpMetricExporter(protocol: string): PushMetricExporter {
  if (protocol === "grpc") return new (require("@opentelemetry/exporter-metrics-otlp-grpc") as typeof import("@opentelemetry/exporter-metrics-otlp-grpc")).OTLPMetricExporter();
  if (protocol === "http/json") return new (require("@opentelemetry/exporter-metrics-otlp-http") as typeof import("@opentelemetry/exporter-metrics-otlp-http")).OTLPMetricExporter();
  return new (require("@opentelemetry/exporter-metrics-otlp-proto") as typeof import("@opentelemetry/exporter-metrics-otlp-proto")).OTLPMetricExporter();
}

function positiveInt(env: NodeJS.ProcessEnv, name: string, fallback: number): number {
  const raw = env[name]?.trim();
  if (!raw) return fallback;
  const n = Number(raw);
  if (!Number.isInteger(n) || n <= 0) throw new ConnectError(`${name} must be a positive integer, got '${raw}'`, Code.InvalidArgument);
  return n;
}

// Our meter's instrumentation scope, as the SDK names it (getMeter's version defaults to "").
const METER_SCOPE = { name: TRACER_NAME, version: "", schemaUrl: undefined };

/**
 * `exporter` with the per-call duration histograms added to every export, in our meter's scope
 * (they are aggregated outside the SDK, see HistogramReader), at the temporality the exporter asks
 * the reader for.
 */
function withCallHistograms(exporter: PushMetricExporter, histograms: HistogramReader[]): PushMetricExporter {
  const reader = new HistogramReader(exporter.selectAggregationTemporality?.(InstrumentType.HISTOGRAM) ?? AggregationTemporality.CUMULATIVE);
  histograms.push(reader);
  return {
    export(metrics, done) {
      reader.addTo(metrics, METER_SCOPE);
      exporter.export(metrics, done);
    },
    forceFlush: () => exporter.forceFlush(),
    shutdown: () => exporter.shutdown(),
    selectAggregationTemporality: exporter.selectAggregationTemporality?.bind(exporter),
    selectAggregation: exporter.selectAggregation?.bind(exporter),
  };
}

/**
 * The propagator OTEL_PROPAGATORS asks for (comma-separated: tracecontext, baggage, b3, b3multi,
 * none); default W3C trace context + baggage. Unknown names fail fast naming the variable.
 */
export function propagatorFromEnv(env: NodeJS.ProcessEnv): TextMapPropagator | undefined {
  const names = [...new Set((env.OTEL_PROPAGATORS ?? "").split(",").map((n) => n.trim()).filter(Boolean))];
  if (names.length === 0) names.push("tracecontext", "baggage");
  if (names.includes("none")) return undefined;
  const propagators = names.map((n): TextMapPropagator => {
    if (n === "tracecontext") return new W3CTraceContextPropagator();
    if (n === "baggage") return new W3CBaggagePropagator();
    if (n === "b3" || n === "b3multi") {
      // Loaded only when asked for.
      const b3 = require("@opentelemetry/propagator-b3") as typeof import("@opentelemetry/propagator-b3");
      return new b3.B3Propagator(n === "b3multi" ? { injectEncoding: b3.B3InjectEncoding.MULTI_HEADER } : {});
    }
    throw new ConnectError(`OTEL_PROPAGATORS value '${n}' is not supported (use tracecontext, baggage, b3, b3multi or none)`, Code.InvalidArgument);
  });
  return propagators.length === 1 ? propagators[0] : new CompositePropagator({ propagators });
}

/**
 * Starts tracing and metrics for this process; call it first in main.ts. Assembles the OpenTelemetry
 * SDK with: AsyncLocalStorage context, W3C trace-context + baggage propagation (or
 * OTEL_PROPAGATORS), the sampler from OTEL_TRACES_SAMPLER (default: always on, parent-based), a
 * resource of service.name / service.instance.id / service.version (+ OTEL_RESOURCE_ATTRIBUTES),
 * an in-memory ring of recent spans, a Prometheus reader for `/metrics`, and OTLP/console
 * exporters only when OTEL_TRACES_EXPORTER / OTEL_METRICS_EXPORTER / OTEL_EXPORTER_OTLP_*ENDPOINT
 * ask for them. No auto-instrumentation is registered (see rpc-tracing.ts for why), so import
 * order does not matter beyond "before the first call". OTEL_SDK_DISABLED=true turns everything
 * into no-ops. Throws FailedPrecondition if telemetry is already running.
 */
export function startTelemetry(opts: TelemetryOptions): Telemetry {
  if (running) throw new ConnectError(`telemetry is already running for ${running.serviceName}/${running.instanceId}`, Code.FailedPrecondition);
  const env = opts.env ?? process.env;
  const version = opts.version ?? "0.0.0";
  const ring = new SpanRing(opts.recentSpanLimit ?? DEFAULT_RECENT_SPANS);
  const disabled = /^(true|1)$/i.test(env.OTEL_SDK_DISABLED?.trim() ?? "");

  const traceExporters = disabled ? [] : exportersFor(env, "TRACES", ["otlp", "console"]);
  // "prometheus" is accepted and ignored: /metrics is always served by startMetricsServer.
  const metricExporters = disabled ? [] : exportersFor(env, "METRICS", ["otlp", "console", "prometheus"]).filter((e) => e !== "prometheus");

  const propagator = disabled ? undefined : propagatorFromEnv(env);

  const spanProcessors: SpanProcessor[] = [ring];
  const spanLogger = opts.logger ?? createLogger({ service: opts.serviceName, instance: opts.instanceId });
  if (spanLogger.isLevelEnabled("debug")) spanProcessors.push(spanLogProcessor(spanLogger));
  for (const e of traceExporters) {
    spanProcessors.push(e === "console" ? new SimpleSpanProcessor(new ConsoleSpanExporter()) : new BatchSpanProcessor(otlpTraceExporter(otlpProtocol(env, "TRACES"))));
  }
  // The Prometheus reader never listens itself: startMetricsServer serves it with the other endpoints.
  const prometheus = new PrometheusExporter({ preventServerStart: true });
  // Scope labels off: every series would carry otel_scope_name="meshwork" for nothing.
  const serializer = new PrometheusSerializer(undefined, false, undefined, false, true);
  const metricReaders: IMetricReader[] = [prometheus];
  const promHistograms = new HistogramReader(AggregationTemporality.CUMULATIVE);
  const histogramReaders = [promHistograms];
  if (metricExporters.length > 0) {
    // 15 s: Prometheus' usual scrape interval, so pushed and scraped series have the same resolution.
    const exportIntervalMillis = positiveInt(env, "OTEL_METRIC_EXPORT_INTERVAL", 15_000);
    for (const e of metricExporters) {
      const exporter = e === "console" ? new ConsoleMetricExporter() : otlpMetricExporter(otlpProtocol(env, "METRICS"));
      metricReaders.push(
        new PeriodicExportingMetricReader({ exporter: withCallHistograms(exporter, histogramReaders), exportIntervalMillis, exportTimeoutMillis: Math.min(exportIntervalMillis, 10_000) }),
      );
    }
  }

  // The SDK's parts wired by hand instead of NodeSDK: NodeSDK loads every exporter, propagator and
  // its YAML configuration at import, ~12 MiB of RSS per idle process for code we never run.
  // Resource: only OTEL_RESOURCE_ATTRIBUTES is detected (host/process detectors would put command
  // lines into target_info); our own attributes win over it.
  const resource = defaultResource()
    .merge(detectResources({ detectors: [envDetector] }))
    .merge(resourceFromAttributes({ [ATTR_SERVICE_NAME]: opts.serviceName, [ATTR_SERVICE_INSTANCE_ID]: opts.instanceId, [ATTR_SERVICE_VERSION]: version }));
  // The sampler comes from OTEL_TRACES_SAMPLER(_ARG), read by BasicTracerProvider itself.
  const tracerProvider = new BasicTracerProvider({ resource, spanProcessors });
  const meterProvider = new MeterProvider({ resource, readers: metricReaders });
  if (!disabled) {
    context.setGlobalContextManager(new MeshContextManager().enable());
    if (propagator) propagation.setGlobalPropagator(propagator);
    trace.setGlobalTracerProvider(tracerProvider);
    metrics.setGlobalMeterProvider(meterProvider);
    bindMeter(meterProvider.getMeter(TRACER_NAME), histogramReaders);
  }

  let stopped: Promise<void> | undefined;
  const telemetry: Telemetry = {
    serviceName: opts.serviceName,
    instanceId: opts.instanceId,
    version,
    exporters: { traces: traceExporters, metrics: metricExporters },
    recentSpans: (sinceMs) => ring.records(sinceMs),
    clearRecentSpans: () => ring.clear(),
    async prometheusText() {
      if (disabled || stopped) return "# telemetry is not running\n";
      const { resourceMetrics, errors } = await prometheus.collect();
      promHistograms.addTo(resourceMetrics, METER_SCOPE);
      // "# UNIT" is OpenMetrics, not the 0.0.4 text format we declare; the unit is in the name.
      let text = serializer.serialize(resourceMetrics).replace(/^# UNIT .*\n/gm, "");
      if (errors.length > 0) text += `\n# ${errors.length} metric callbacks failed\n`;
      return text;
    },
    async forceFlush() {
      if (disabled || stopped) return;
      await Promise.all(spanProcessors.map((p) => p.forceFlush()));
    },
    shutdown() {
      return (stopped ??= (async () => {
        bindMeter(undefined);
        try {
          if (!disabled) await Promise.all([tracerProvider.shutdown(), meterProvider.shutdown()]);
        } finally {
          // Unregister the globals so a later startTelemetry (tests) can register its own.
          trace.disable();
          metrics.disable();
          propagation.disable();
          context.disable();
          if (running === telemetry) running = undefined;
        }
      })());
    },
  };
  running = telemetry;
  return telemetry;
}
