import { Code } from "@connectrpc/connect";
import { ValueType, type Attributes, type Counter, type Histogram, type Meter, type ObservableResult } from "@opentelemetry/api";
import { RollingStats, type RollingSeries } from "./rolling-stats.js";

/*
 * Metrics are OpenTelemetry instruments read by OTel's Prometheus reader (served by
 * startMetricsServer) and, when OTLP is configured, pushed as well: one instrument API for both.
 * OTel's Prometheus serializer keeps our names as given (no unit suffixes; `_total` is already
 * there), so the series below are exactly what Prometheus sees. Other modules record through this
 * typed API and never import OpenTelemetry.
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
  serverDuration: Histogram;
  clientDuration: Histogram;
  clientRetriesThrottled: Counter;
  httpDuration: Histogram;
  consumerRedeliveries: Counter;
  sagaOutcomes: Counter;
}

function createInstruments(meter: Meter): Instruments {
  const counter = (name: string, description: string) => meter.createCounter(name, { description, valueType: ValueType.INT });
  const seconds = (name: string, description: string) =>
    meter.createHistogram(name, { description, unit: "s", advice: { explicitBucketBoundaries: DURATION_BUCKETS_SECONDS } });
  for (const f of rpcCounters) f.attach(meter);
  // Created in this order because /metrics lists the metrics in creation order.
  const serverDuration = seconds(METRIC.serverDuration, "Time to handle a unary RPC, in seconds.");
  const clientDuration = seconds(METRIC.clientDuration, "Time of a logical unary RPC including retries, in seconds.");
  const clientRetriesThrottled = counter(METRIC.clientRetriesThrottled, "Retries not made because the retry budget or token bucket was empty.");
  httpRequestCounter.attach(meter);
  return {
    serverDuration,
    clientDuration,
    clientRetriesThrottled,
    httpDuration: seconds(METRIC.httpDuration, "Time to serve an HTTP request, in seconds."),
    consumerRedeliveries: counter(METRIC.consumerRedeliveries, "Event deliveries after the first (handler failed, ack lost or timed out)."),
    sagaOutcomes: counter(METRIC.sagaOutcomes, "Finished sagas, by outcome."),
  };
}

/**
 * A counter of the per-call data path, counted in a plain number per label set and reported to
 * OpenTelemetry as an observable counter at collection time. Same series as a synchronous Counter
 * (cumulative, monotonic, same name and labels), but a call costs a few map lookups instead of the
 * SDK hashing its attribute object on every `add` (measured: the largest single cost of recording
 * RED metrics on the hop). Label values are looked up level by level, so nothing is allocated
 * per call once a series exists.
 */
class CallCounter {
  private readonly root = new Map<string, unknown>();
  private readonly series: CounterSeries[] = [];
  private overflow: CounterSeries | undefined;
  /** Bumped by `attach`: entries handed out before belong to the previous SDK and are stale. */
  generation = 0;

  constructor(
    private readonly name: string,
    private readonly help: string,
    private readonly labelNames: readonly string[],
    /** Series beyond this many are counted together under `otel.metric.overflow`, as the SDK's counters do. */
    private readonly maxSeries = Infinity,
  ) {}

  /** Adds 1 to the series with these label values (in `labelNames` order). */
  inc(...values: string[]): void {
    this.entry(values).n++;
  }

  /** The series with these label values, for callers that keep it (check `generation` before reuse). */
  entry(values: readonly string[]): CounterSeries {
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
    let entry = node.get(values[last]) as CounterSeries | undefined;
    if (!entry && this.series.length >= this.maxSeries - 1) return (this.overflow ??= this.addSeries({ "otel.metric.overflow": true }));
    if (!entry) {
      const labels: Attributes = {};
      this.labelNames.forEach((l, i) => (labels[l] = values[i]));
      entry = this.addSeries(labels);
      node.set(values[last], entry);
    }
    return entry;
  }

  private addSeries(labels: Attributes): CounterSeries {
    const entry = { labels, n: 0 };
    this.series.push(entry);
    return entry;
  }

  /** Reports the series on `meter`; counts restart from zero, as a new SDK's instruments would. */
  attach(meter: Meter): void {
    this.root.clear();
    this.series.length = 0;
    this.overflow = undefined;
    this.generation++;
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

/** Binds the API to a meter (startTelemetry) or unbinds it (shutdown). Internal to mesh/telemetry. */
export function bindMeter(m: Meter | undefined): void {
  meter = m;
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
 * series, the request counter's series per code and the duration histogram's attributes.
 */
class MethodMetrics implements CallRecorder {
  private rolling: RollingSeries | undefined;
  private readonly counters: CounterSlots;
  private readonly attributes: Attributes;

  constructor(
    private readonly kind: "server" | "client",
    private readonly service: string,
    private readonly method: string,
    private readonly target?: string,
  ) {
    this.counters = new CounterSlots(kind === "server" ? rpcCounters.serverRequests : rpcCounters.clientRequests, target === undefined ? [service, method] : [target, service, method]);
    this.attributes = target === undefined ? { service, method } : { target, service, method };
  }

  record(code: Code | undefined, durationMs: number | undefined): void {
    const c = codeName(code);
    (this.rolling ??= rollingStats.series(this.kind, this.service, this.method, this.target)).record(c, code !== undefined, durationMs);
    if (!instruments) return;
    this.counters.inc(code ?? 0, c);
    // The SDK keys the series by hashing the attributes on every record; the object at least is reused.
    if (durationMs !== undefined) (this.kind === "server" ? instruments.serverDuration : instruments.clientDuration).record(ms(durationMs), this.attributes);
  }
}

const ms = (s: number) => s / 1000;

/**
 * What `httpRequest` needs per (method, route), resolved on its first request: the rolling series,
 * the histogram's attribute object and the counter series by status.
 */
interface HttpSeries {
  rolling: RollingSeries;
  durationAttributes: Attributes;
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
  s = { rolling: rollingStats.series("http", "http", `${method} ${route}`), durationAttributes: { method, route }, counters: new CounterSlots(httpRequestCounter, [method, route]) };
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
    // The SDK still hashes these attributes per record (the object at least is reused).
    instruments.httpDuration.record(ms(durationMs), s.durationAttributes);
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
