import { Code } from "@connectrpc/connect";
import { diag, ValueType, type Attributes, type Counter, type HrTime, type Meter, type ObservableResult } from "@opentelemetry/api";
import { millisToHrTime, type InstrumentationScope } from "@opentelemetry/core";
import {
  AggregationTemporality,
  DataPointType,
  InstrumentType,
  type HistogramMetricData,
  type MetricData,
  type MetricDescriptor,
  type ResourceMetrics,
} from "@opentelemetry/sdk-metrics";
import { RollingStats, type RollingSeries } from "./rolling-stats.js";

/*
 * Metrics are OpenTelemetry instruments read by OTel's Prometheus reader (served by
 * startMetricsServer) and, when OTLP is configured, pushed as well: one instrument API for both.
 * OTel's Prometheus serializer keeps our names as given (no unit suffixes; `_total` is already
 * there), so the series below are exactly what Prometheus sees. Other modules record through this
 * typed API and never import OpenTelemetry. The per-call series (request counters, duration
 * histograms) are counted here in plain numbers and handed to the SDK at collection time (see
 * CallCounter, CallHistogram): the SDK would hash the attributes of every single measurement.
 */

// 1 ms … 10 s: a loopback unary call takes 0.3–0.6 ms (TOOLCHAIN.md), so the first bucket means
// "fast"; 10 s is the longest method deadline, so +Inf means "past any deadline". In between the
// usual 1-2.5-5 steps keep the p99 estimate within a factor of 2.5.
export const DURATION_BUCKETS_SECONDS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];

/** Metric names, in one place (Prometheus style). */
export const METRIC = {
  serverRequests: "rpc_server_requests_total",
  serverDuration: "rpc_server_duration_seconds",
  clientRequests: "rpc_client_requests_total",
  clientDuration: "rpc_client_duration_seconds",
  clientAttempts: "rpc_client_attempts_total",
  clientRetries: "rpc_client_retries_total",
  clientRetriesThrottled: "rpc_client_retries_throttled_total",
  clientBreakerState: "rpc_client_breaker_state",
  clientEjectedEndpoints: "rpc_client_ejected_endpoints",
  clientKnownEndpoints: "rpc_client_known_endpoints",
  httpRequests: "http_server_requests_total",
  httpDuration: "http_server_duration_seconds",
  registryRegistered: "meshwork_registry_registered",
  registryRegistrations: "meshwork_registry_registrations_total",
  outboxBacklog: "meshwork_outbox_backlog",
  consumerRedeliveries: "meshwork_consumer_redeliveries_total",
  dlqMessages: "meshwork_dlq_messages",
  sagaOutcomes: "meshwork_saga_outcomes_total",
} as const;

/** Circuit breaker states as exported by `rpc_client_breaker_state`. */
export const BreakerState = { closed: 0, halfOpen: 1, open: 2 } as const;
/** A breaker state as a number, or as mesh/policy's `CircuitBreaker.state` names it. */
export type BreakerStateValue = (typeof BreakerState)[keyof typeof BreakerState] | "closed" | "half-open" | "open";

function breakerNumber(s: BreakerStateValue): number {
  if (typeof s === "number") return s;
  return s === "open" ? BreakerState.open : s === "half-open" ? BreakerState.halfOpen : BreakerState.closed;
}

interface Instruments {
  clientRetriesThrottled: Counter;
  consumerRedeliveries: Counter;
  sagaOutcomes: Counter;
}

function createInstruments(meter: Meter): Instruments {
  const counter = (name: string, description: string) => meter.createCounter(name, { description, valueType: ValueType.INT });
  for (const f of rpcCounters) f.attach(meter);
  // The duration histograms are not SDK instruments (CallHistogram); HistogramReader puts them back
  // where they were created before, between these, because /metrics lists metrics in creation order.
  const clientRetriesThrottled = counter(METRIC.clientRetriesThrottled, "Retries not made because the retry budget or token bucket was empty.");
  httpRequestCounter.attach(meter);
  return {
    clientRetriesThrottled,
    consumerRedeliveries: counter(METRIC.consumerRedeliveries, "Event deliveries after the first (handler failed, ack lost or timed out)."),
    sagaOutcomes: counter(METRIC.sagaOutcomes, "Finished sagas, by outcome."),
  };
}

// The order createInstruments made the metrics in while the histograms were SDK instruments (and
// still makes the others in): where HistogramReader inserts the histograms.
const CREATION_ORDER: readonly string[] = [
  METRIC.serverRequests,
  METRIC.clientRequests,
  METRIC.clientAttempts,
  METRIC.clientRetries,
  METRIC.serverDuration,
  METRIC.clientDuration,
  METRIC.clientRetriesThrottled,
  METRIC.httpRequests,
  METRIC.httpDuration,
  METRIC.consumerRedeliveries,
  METRIC.sagaOutcomes,
];

/**
 * Series by label values, looked up level by level so that nothing is allocated per call once a
 * series exists. Shared by the per-call counters and histograms.
 */
abstract class SeriesTable<S extends { labels: Attributes }> {
  private readonly root = new Map<string, unknown>();
  /** In creation order (the order the SDK reported its own series in). */
  readonly series: S[] = [];
  private overflow: S | undefined;
  /** Bumped by `reset`: entries handed out before belong to the previous SDK and are stale. */
  generation = 0;

  constructor(
    readonly name: string,
    readonly help: string,
    private readonly labelNames: readonly string[],
    /** Series beyond this many are counted together under `otel.metric.overflow`, as the SDK's instruments do. */
    private readonly maxSeries = Infinity,
  ) {}

  protected abstract create(labels: Attributes): S;

  /** The series with these label values (in `labelNames` order), for callers that keep it (check `generation` before reuse). */
  entry(values: readonly string[]): S {
    let node = this.root;
    const last = values.length - 1;
    for (let i = 0; i < last; i++) {
      let next = node.get(values[i]) as Map<string, unknown> | undefined;
      if (!next) {
        next = new Map();
        node.set(values[i], next);
      }
      node = next;
    }
    let entry = node.get(values[last]) as S | undefined;
    if (!entry && this.series.length >= this.maxSeries - 1) return (this.overflow ??= this.addSeries({ "otel.metric.overflow": true }));
    if (!entry) {
      const labels: Attributes = {};
      this.labelNames.forEach((l, i) => (labels[l] = values[i]));
      entry = this.addSeries(labels);
      node.set(values[last], entry);
    }
    return entry;
  }

  private addSeries(labels: Attributes): S {
    const entry = this.create(labels);
    this.series.push(entry);
    return entry;
  }

  /** Forgets every series: a new SDK starts from zero. */
  protected reset(): void {
    this.root.clear();
    this.series.length = 0;
    this.overflow = undefined;
    this.generation++;
  }
}

/**
 * A counter of the per-call data path, counted in a plain number per label set and reported to
 * OpenTelemetry as an observable counter at collection time. Same series as a synchronous Counter
 * (cumulative, monotonic, same name and labels), but a call costs a few map lookups instead of the
 * SDK hashing its attribute object on every `add` (measured: the largest single cost of recording
 * RED metrics on the hop).
 */
class CallCounter extends SeriesTable<CounterSeries> {
  protected create(labels: Attributes): CounterSeries {
    return { labels, n: 0 };
  }

  /** Adds 1 to the series with these label values (in `labelNames` order). */
  inc(...values: string[]): void {
    this.entry(values).n++;
  }

  /** Reports the series on `meter`; counts restart from zero, as a new SDK's instruments would. */
  attach(meter: Meter): void {
    this.reset();
    const c = meter.createObservableCounter(this.name, { description: this.help, valueType: ValueType.INT });
    c.addCallback((result) => {
      for (const s of this.series) result.observe(s.n, s.labels);
    });
  }
}

interface CounterSeries {
  labels: Attributes;
  n: number;
}

const rpcCounters = {
  serverRequests: new CallCounter(METRIC.serverRequests, "RPCs handled, by gRPC status code.", ["service", "method", "code"]),
  clientRequests: new CallCounter(METRIC.clientRequests, "Logical RPCs made (all attempts together), by final gRPC status code.", ["target", "service", "method", "code"]),
  clientAttempts: new CallCounter(METRIC.clientAttempts, "Attempts made, first tries and retries.", ["target", "method"]),
  clientRetries: new CallCounter(METRIC.clientRetries, "Attempts after the first (retries).", ["target", "method"]),
  [Symbol.iterator]: function* (): Generator<CallCounter> {
    yield rpcCounters.serverRequests;
    yield rpcCounters.clientRequests;
    yield rpcCounters.clientAttempts;
    yield rpcCounters.clientRetries;
  },
};

// A CallCounter like the RPC ones: the gateway counts every request. Attached by createInstruments
// between the metrics it followed as a synchronous counter, so /metrics keeps its order. 2,000
// series: the SDK's default cardinality limit, which applied when it was a synchronous counter
// (the method is the client's, so the label set is not bounded by our routes alone).
const httpRequestCounter = new CallCounter(METRIC.httpRequests, "HTTP requests served, by route and status.", ["method", "route", "status"], 2_000);

// Per delta reader, each series keeps [start, min, max, sum] of the values since that reader's last
// collection: what the SDK reported for a delta interval.
const WINDOW = 4;

/** One duration histogram series: the SDK's explicit-bucket aggregation, by hand. */
class HistogramSeries {
  /** Per DURATION_BUCKETS_SECONDS bucket (value ≤ bound), then +Inf. */
  readonly counts: number[] = new Array<number>(DURATION_BUCKETS_SECONDS.length + 1).fill(0);
  sum = 0;
  count = 0;
  min = Infinity;
  max = -Infinity;
  /** When the first value came: the start time of the cumulative series, as the SDK set it. */
  readonly startTime = Date.now();
  /** `WINDOW` numbers per delta reader; start NaN = no value since that reader's last collection. */
  readonly windows: Float64Array;

  constructor(
    readonly labels: Attributes,
    deltaReaders: number,
  ) {
    this.windows = new Float64Array(deltaReaders * WINDOW).fill(NaN);
  }

  record(v: number): void {
    // NaN falls into no bucket and is not counted (the SDK's rule).
    if (v !== v) return;
    this.count++;
    this.sum += v;
    if (v < this.min) this.min = v;
    if (v > this.max) this.max = v;
    // Linear from the smallest bound: most calls land in the first bucket or two.
    const bounds = DURATION_BUCKETS_SECONDS;
    let i = 0;
    while (i < bounds.length && bounds[i] < v) i++;
    this.counts[i]++;
    const w = this.windows;
    for (let k = 0; k < w.length; k += WINDOW) {
      if (w[k] !== w[k]) {
        w[k] = Date.now();
        w[k + 1] = v;
        w[k + 2] = v;
        w[k + 3] = v;
      } else {
        if (v < w[k + 1]) w[k + 1] = v;
        if (v > w[k + 2]) w[k + 2] = v;
        w[k + 3] += v;
      }
    }
  }
}

/**
 * A duration histogram of the per-call data path, aggregated here per label set (same buckets,
 * sum, count, min and max as the SDK's histogram) and handed to the SDK's readers at collection
 * time by {@link HistogramReader}. The API has no observable histogram, and the SDK's synchronous
 * one hashes the attribute object on every `record`.
 */
class CallHistogram extends SeriesTable<HistogramSeries> {
  /** Delta readers of the current SDK: how many windows a new series keeps. */
  private deltaReaders = 0;
  /** What the SDK's instrument descriptor was (`type`/`advice` included: exporters get the same object shape). */
  readonly descriptor: MetricDescriptor;

  constructor(name: string, help: string, labelNames: readonly string[], maxSeries?: number) {
    super(name, help, labelNames, maxSeries);
    this.descriptor = {
      name,
      description: help,
      unit: "s",
      valueType: ValueType.DOUBLE,
      type: InstrumentType.HISTOGRAM,
      advice: { explicitBucketBoundaries: DURATION_BUCKETS_SECONDS },
    } as MetricDescriptor;
  }

  protected create(labels: Attributes): HistogramSeries {
    return new HistogramSeries(labels, this.deltaReaders);
  }

  /** Starts from zero for a new SDK with `deltaReaders` delta readers. */
  attach(deltaReaders: number): void {
    this.reset();
    this.deltaReaders = deltaReaders;
  }
}

// 2,000 series each: the SDK's default cardinality limit, which applied while these were SDK histograms.
const SDK_CARDINALITY_LIMIT = 2_000;
const callHistograms = {
  serverDuration: new CallHistogram(METRIC.serverDuration, "Time to handle a unary RPC, in seconds.", ["service", "method"], SDK_CARDINALITY_LIMIT),
  clientDuration: new CallHistogram(METRIC.clientDuration, "Time of a logical unary RPC including retries, in seconds.", ["target", "service", "method"], SDK_CARDINALITY_LIMIT),
  httpDuration: new CallHistogram(METRIC.httpDuration, "Time to serve an HTTP request, in seconds.", ["method", "route"], SDK_CARDINALITY_LIMIT),
};
const allHistograms = [callHistograms.serverDuration, callHistograms.clientDuration, callHistograms.httpDuration];

/**
 * The duration histograms as one metric reader sees them: cumulative (Prometheus; OTLP by default)
 * or delta (an OTLP exporter preferring delta), with the series, start times, min/max and sums the
 * SDK's own histograms reported for that temporality. One per reader; give them all to
 * {@link bindMeter}.
 */
export class HistogramReader {
  /** This reader's window in each series (delta only); set by bindMeter. */
  window = -1;
  private lastCollection = NaN;
  /** Delta: bucket counts at the last collection, per series. */
  private readonly counted = new Map<HistogramSeries, number[]>();
  /** Delta: the series of the previous report (their start is the previous collection). */
  private previous = new Set<HistogramSeries>();

  constructor(readonly temporality: AggregationTemporality) {}

  /** The histograms with data, as of `now` (epoch ms); a delta reader's interval ends here. */
  collect(now = Date.now()): HistogramMetricData[] {
    const endTime = millisToHrTime(now);
    const out: HistogramMetricData[] = [];
    const reported = new Set<HistogramSeries>();
    for (const h of allHistograms) {
      const dataPoints: HistogramMetricData["dataPoints"] = [];
      for (const s of h.series) {
        const point = this.temporality === AggregationTemporality.DELTA ? this.deltaPoint(s, endTime) : cumulativePoint(s, endTime);
        if (!point) continue;
        dataPoints.push(point);
        reported.add(s);
      }
      if (dataPoints.length > 0) out.push({ descriptor: h.descriptor, aggregationTemporality: this.temporality, dataPointType: DataPointType.HISTOGRAM, dataPoints });
    }
    this.previous = reported;
    this.lastCollection = now;
    return out;
  }

  private deltaPoint(s: HistogramSeries, endTime: HrTime): HistogramMetricData["dataPoints"][number] | undefined {
    const w = s.windows;
    const k = this.window * WINDOW;
    if (k < 0 || k >= w.length || w[k] !== w[k]) return undefined;
    const before = this.counted.get(s);
    const counts = s.counts.slice();
    this.counted.set(s, counts);
    const delta = before ? counts.map((n, i) => n - before[i]) : counts.slice();
    const point = {
      attributes: s.labels,
      // The SDK's rule: a series reported last time starts where that interval ended, a new one at its first value.
      startTime: millisToHrTime(this.previous.has(s) ? this.lastCollection : w[k]),
      endTime,
      value: {
        min: w[k + 1],
        max: w[k + 2],
        sum: w[k + 3],
        buckets: { boundaries: DURATION_BUCKETS_SECONDS, counts: delta },
        count: delta.reduce((a, b) => a + b, 0),
      },
    };
    w[k] = NaN;
    return point;
  }

  /**
   * Adds the histograms to `rm` (a collection of the SDK's), in the metrics of `scope` where the
   * SDK listed its own histograms: right after the metrics created before them.
   */
  addTo(rm: ResourceMetrics, scope: InstrumentationScope, now = Date.now()): void {
    const histograms = this.collect(now);
    if (histograms.length === 0) return;
    let sm = rm.scopeMetrics.find((x) => x.scope.name === scope.name && x.scope.version === scope.version && x.scope.schemaUrl === scope.schemaUrl);
    if (!sm) rm.scopeMetrics.push((sm = { scope, metrics: [] }));
    const rank = (m: MetricData) => {
      const i = CREATION_ORDER.indexOf(m.descriptor.name);
      return i < 0 ? Infinity : i;
    };
    const metrics = sm.metrics as MetricData[];
    for (const h of histograms) {
      const r = rank(h);
      const at = metrics.findIndex((m) => rank(m) > r);
      metrics.splice(at < 0 ? metrics.length : at, 0, h);
    }
  }
}

function cumulativePoint(s: HistogramSeries, endTime: HrTime): HistogramMetricData["dataPoints"][number] {
  const seen = s.count > 0;
  return {
    attributes: s.labels,
    startTime: millisToHrTime(s.startTime),
    endTime,
    value: {
      min: seen ? s.min : undefined,
      max: seen ? s.max : undefined,
      sum: s.sum,
      buckets: { boundaries: DURATION_BUCKETS_SECONDS, counts: s.counts.slice() },
      count: s.count,
    },
  };
}

/**
 * The series of one histogram for fixed label values, resolved on first use and again after the
 * histogram re-attaches to a new SDK.
 */
class HistogramSlot {
  private series: HistogramSeries | undefined;
  private generation = -1;

  constructor(
    private readonly histogram: CallHistogram,
    private readonly values: readonly string[],
  ) {}

  record(seconds: number): void {
    if (seconds < 0) {
      diag.warn(`negative value provided to histogram ${this.histogram.name}: ${seconds}`);
      return;
    }
    if (this.generation !== this.histogram.generation) {
      this.generation = this.histogram.generation;
      this.series = this.histogram.entry(this.values);
    }
    this.series!.record(seconds);
  }
}

/** Something an observable metric reads at scrape time. */
interface Source {
  labels: Attributes;
  read(): number | Promise<number>;
}

interface Observed {
  kind: "gauge" | "counter";
  help: string;
  sources: Set<Source>;
}

// Module state: instruments exist only while telemetry runs (OpenTelemetry's metrics API has no
// proxy, so instruments made before the provider would stay no-ops forever). Observed sources are
// kept across restarts and attached to whichever meter is current.
let instruments: Instruments | undefined;
let meter: Meter | undefined;
const observed = new Map<string, Observed>();

/** The rolling per-method window behind `/metrics/summary` (fed by the same calls as the metrics). */
export const rollingStats = new RollingStats();

function attachObservable(m: Meter, name: string, o: Observed): void {
  const inst = o.kind === "gauge" ? m.createObservableGauge(name, { description: o.help }) : m.createObservableCounter(name, { description: o.help });
  inst.addCallback(async (result: ObservableResult) => {
    await Promise.all(
      [...o.sources].map(async (s) => {
        try {
          result.observe(await s.read(), s.labels);
        } catch {
          // A source that cannot answer (e.g. its database is down) is left out of this scrape.
        }
      }),
    );
  });
}

/**
 * Binds the API to a meter (startTelemetry) or unbinds it (shutdown), with one HistogramReader per
 * metric reader of the meter's provider. Unbinding keeps the histograms' data: the provider's
 * shutdown still exports it. Internal to mesh/telemetry.
 */
export function bindMeter(m: Meter | undefined, histogramReaders: readonly HistogramReader[] = []): void {
  meter = m;
  if (m) {
    let deltaReaders = 0;
    for (const r of histogramReaders) r.window = r.temporality === AggregationTemporality.DELTA ? deltaReaders++ : -1;
    for (const h of allHistograms) h.attach(deltaReaders);
  }
  instruments = m ? createInstruments(m) : undefined;
  if (m) for (const [name, o] of observed) attachObservable(m, name, o);
}

function observe(kind: "gauge" | "counter", name: string, help: string, read: () => number | Promise<number>, labels: Attributes = {}): () => void {
  let o = observed.get(name);
  if (!o) {
    o = { kind, help, sources: new Set() };
    observed.set(name, o);
    if (meter) attachObservable(meter, name, o);
  } else if (o.kind !== kind) {
    throw new Error(`metric ${name} is already registered as a ${o.kind}`);
  }
  const source: Source = { labels, read };
  o.sources.add(source);
  return () => o.sources.delete(source);
}

/**
 * Registers a gauge read at scrape time: `read` returns the current value (may be async, e.g. a
 * COUNT query). Several registrations of one name with different `labels` form one metric.
 * Returns an unregister function.
 */
export function registerGauge(name: string, help: string, read: () => number | Promise<number>, labels?: Attributes): () => void {
  return observe("gauge", name, help, read, labels);
}

/** Like {@link registerGauge} for a monotonic total kept elsewhere (e.g. a `registrations` count). */
export function registerObservedCounter(name: string, help: string, read: () => number | Promise<number>, labels?: Attributes): () => void {
  return observe("counter", name, help, read, labels);
}

/** The Prometheus-style name of a status: "OK" or the Connect code name ("NotFound"). */
export function codeName(code: Code | undefined): string {
  return code === undefined ? "OK" : (Code[code] ?? String(code));
}

/**
 * The series of one `counter` sharing leading label values, by a small integer key (a status
 * code), resolved on first use and dropped when the counter re-attaches to a new SDK: one array
 * read per call instead of walking the counter's label tree.
 */
class CounterSlots {
  private slots: (CounterSeries | undefined)[] = [];
  private generation = -1;

  constructor(
    private readonly counter: CallCounter,
    private readonly leading: readonly string[],
  ) {}

  /** Adds 1 to the series whose last label is `last`; `key` stands for `last` (one per value). */
  inc(key: number, last: string): void {
    if (this.generation !== this.counter.generation) {
      this.generation = this.counter.generation;
      this.slots = [];
    }
    (this.slots[key] ??= this.counter.entry([...this.leading, last])).n++;
  }
}

/** Records the calls of one RPC method on one side; from {@link meshMetrics.serverRecorder} / {@link meshMetrics.clientRecorder}. */
export interface CallRecorder {
  /** One call ended with `code` (undefined = OK); `durationMs` undefined for streams (their length is not latency). */
  record(code: Code | undefined, durationMs: number | undefined): void;
}

/**
 * Everything that depends only on (side, target, service, method), resolved once: the rolling
 * series, the request counter's series per code and the duration histogram's series.
 */
class MethodMetrics implements CallRecorder {
  private rolling: RollingSeries | undefined;
  private readonly counters: CounterSlots;
  private readonly durations: HistogramSlot;

  constructor(
    private readonly kind: "server" | "client",
    private readonly service: string,
    private readonly method: string,
    private readonly target?: string,
  ) {
    this.counters = new CounterSlots(kind === "server" ? rpcCounters.serverRequests : rpcCounters.clientRequests, target === undefined ? [service, method] : [target, service, method]);
    const labels = target === undefined ? [service, method] : [target, service, method];
    this.durations = new HistogramSlot(kind === "server" ? callHistograms.serverDuration : callHistograms.clientDuration, labels);
  }

  record(code: Code | undefined, durationMs: number | undefined): void {
    const c = codeName(code);
    (this.rolling ??= rollingStats.series(this.kind, this.service, this.method, this.target)).record(c, code !== undefined, durationMs);
    if (!instruments) return;
    this.counters.inc(code ?? 0, c);
    if (durationMs !== undefined) this.durations.record(ms(durationMs));
  }
}

const ms = (s: number) => s / 1000;

/**
 * What `httpRequest` needs per (method, route), resolved on its first request: the rolling series,
 * the histogram series and the counter series by status.
 */
interface HttpSeries {
  rolling: RollingSeries;
  durations: HistogramSlot;
  /** `http_server_requests_total` by status code. */
  counters: CounterSlots;
}

const httpSeriesByMethod = new Map<string, Map<string, HttpSeries>>();
let httpSeriesCount = 0;
// 1,000 (method, route) pairs: the rolling summary's own series limit; past it (odd methods from
// clients) a request resolves its series afresh instead of growing the cache.
const MAX_HTTP_SERIES = 1_000;

function httpSeries(method: string, route: string): HttpSeries {
  let byRoute = httpSeriesByMethod.get(method);
  let s = byRoute?.get(route);
  if (s) return s;
  s = { rolling: rollingStats.series("http", "http", `${method} ${route}`), durations: new HistogramSlot(callHistograms.httpDuration, [method, route]), counters: new CounterSlots(httpRequestCounter, [method, route]) };
  if (httpSeriesCount < MAX_HTTP_SERIES) {
    if (!byRoute) httpSeriesByMethod.set(method, (byRoute = new Map()));
    byRoute.set(route, s);
    httpSeriesCount++;
  }
  return s;
}

/**
 * Typed recording API for RPC, HTTP, event and saga metrics. Everything is a no-op until
 * startTelemetry has run (the rolling summary window records regardless).
 */
export const meshMetrics = {
  /**
   * The calls one server method handled (`rpc_server_requests_total`, `rpc_server_duration_seconds`,
   * the rolling summary). Keep one per method: the lookups happen once (the tracing middleware does).
   */
  serverRecorder(service: string, method: string): CallRecorder {
    return new MethodMetrics("server", service, method);
  },

  /** Like {@link serverRecorder} for logical client calls (all attempts) to `target`, the logical service name ("catalog"). */
  clientRecorder(target: string, service: string, method: string): CallRecorder {
    return new MethodMetrics("client", service, method, target);
  },

  /** One attempt of a client call ended; `attempt` 1 is the first try, more is a retry. */
  clientAttempt(target: string, method: string, attempt: number): void {
    if (!instruments) return;
    rpcCounters.clientAttempts.inc(target, method);
    if (attempt > 1) rpcCounters.clientRetries.inc(target, method);
  },

  /** A retry the policy wanted but its budget/token bucket refused. */
  retryThrottled(target: string, method: string): void {
    instruments?.clientRetriesThrottled.add(1, { target, method });
  },

  /** An HTTP request served (gateway); `route` must come from a bounded set (not the raw path). */
  httpRequest(method: string, route: string, status: number, durationMs: number): void {
    const s = httpSeries(method, route);
    const code = String(status);
    s.rolling.record(code, status >= 500, durationMs);
    if (!instruments) return;
    s.counters.inc(status, code);
    s.durations.record(ms(durationMs));
  },

  /** An event delivered again (deliveryCount > 1). */
  consumerRedelivery(consumer: string, stream: string): void {
    instruments?.consumerRedeliveries.add(1, { consumer, stream });
  },

  /** A saga finished: e.g. "completed", "compensated", "failed". */
  sagaOutcome(outcome: string): void {
    instruments?.sagaOutcomes.add(1, { outcome });
  },
};

/** What {@link observeRegistration} reads; mesh/registry's `Registration` fits. */
export interface RegistrationLike {
  isRegistered(): boolean;
  readonly registrations: number;
}

/** Exports `meshwork_registry_registered` (0/1) and `meshwork_registry_registrations_total`. */
export function observeRegistration(reg: RegistrationLike): () => void {
  const a = registerGauge(METRIC.registryRegistered, "1 while this instance's registry key exists under a live lease.", () => (reg.isRegistered() ? 1 : 0));
  const b = registerObservedCounter(METRIC.registryRegistrations, "Registrations made (the first, then one per lost lease).", () => reg.registrations);
  return () => (a(), b());
}

/** What {@link observeClient} reads; mesh/balancer's `Balancer` fits. */
export interface BalancerLike {
  endpoints(): readonly string[];
  ejected(): readonly string[];
}

/**
 * Exports the client gauges of one upstream `target`: `rpc_client_known_endpoints`,
 * `rpc_client_ejected_endpoints` (from the balancer) and `rpc_client_breaker_state` (0 closed,
 * 1 half-open, 2 open; from the policy, when it has a breaker, e.g. `() => policy.breaker!.state`).
 */
export function observeClient(target: string, sources: { balancer?: BalancerLike; breakerState?: () => BreakerStateValue }): () => void {
  const undo: (() => void)[] = [];
  const labels = { target };
  if (sources.balancer) {
    const b = sources.balancer;
    undo.push(registerGauge(METRIC.clientKnownEndpoints, "Endpoints discovery lists for the target.", () => b.endpoints().length, labels));
    undo.push(registerGauge(METRIC.clientEjectedEndpoints, "Endpoints currently ejected by outlier detection.", () => b.ejected().length, labels));
  }
  if (sources.breakerState) {
    const read = sources.breakerState;
    undo.push(registerGauge(METRIC.clientBreakerState, "Circuit breaker state: 0 closed, 1 half-open, 2 open.", () => breakerNumber(read()), labels));
  }
  return () => undo.forEach((u) => u());
}

/** Exports `meshwork_outbox_backlog` from the relay's unsent-row count (one indexed COUNT per scrape). */
export function observeOutbox(relay: { backlog(): Promise<number> }): () => void {
  return registerGauge(METRIC.outboxBacklog, "Outbox events not yet published.", () => relay.backlog());
}

/** Exports `meshwork_dlq_messages`, e.g. `() => jsm.streams.info("DLQ").then((i) => i.state.messages)`. */
export function observeDlq(count: () => Promise<number> | number, labels?: Attributes): () => void {
  return registerGauge(METRIC.dlqMessages, "Messages in the dead-letter stream.", count, labels);
}
