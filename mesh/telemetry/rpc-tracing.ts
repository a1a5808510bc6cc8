import type { DescMethod, DescService } from "@bufbuild/protobuf";
import {
  Code,
  ConnectError,
  createContextKey as createValueKey,
  type ContextKey,
  type ContextValues,
  type HandlerContext,
  type Interceptor,
  type StreamResponse,
  type UnaryResponse,
} from "@connectrpc/connect";
import {
  context,
  propagation,
  ROOT_CONTEXT,
  SpanKind,
  SpanStatusCode,
  trace,
  type Attributes,
  type Span,
  type SpanOptions,
  type TextMapGetter,
  type TextMapSetter,
  type Tracer,
} from "@opentelemetry/api";
import type { Metadata } from "@grpc/grpc-js";
import { hookCallValues, outgoingMetadata, type CallPolicy } from "../client/index.js";
import { observeCall, onCallAbort, requestHeaderKeys, requestHeaderValue, setMetadataHeader, type CallObserver, type ServerMiddleware } from "../grpc/index.js";
import { meshMetrics, type CallRecorder } from "./metrics.js";

/*
 * Why our own middleware and interceptor instead of @opentelemetry/instrumentation-grpc:
 * - Both data-path sides already go through our adapter (mesh/grpc server adapter, mesh/client
 *   transport), so one wrapper per side sees every call with its protobuf-es descriptors, the
 *   Connect code and the deadline: no monkey-patching of grpc-js, no "load order" trap.
 * - The gateway speaks Connect over node:http/http2, which nothing instruments (TOOLCHAIN.md trap
 *   7): we need our own spans there anyway, and one implementation gives identical attributes on
 *   every hop.
 * - instrumentation-grpc would create a span per *attempt* under grpc-js's client; ours is one
 *   client span per *logical* call with retries as events, which is what a trace reader wants.
 *   Running both would double every span, so instrumentation-grpc is not registered.
 * - The same wrapper times the call for the RED metrics, so a call is measured once.
 *
 * Attributes follow the OpenTelemetry RPC conventions as emitted by instrumentation-grpc 0.223
 * (rpc.system, rpc.service, rpc.method, rpc.grpc.status_code). Semconv 1.45 has since stabilised
 * rpc.system.name / fully-qualified rpc.method / rpc.response.status_code; switching is a change to
 * this block only.
 */
export const ATTR = {
  rpcSystem: "rpc.system",
  rpcService: "rpc.service",
  rpcMethod: "rpc.method",
  rpcGrpcStatusCode: "rpc.grpc.status_code",
  serverAddress: "server.address",
  serverPort: "server.port",
  /** Meshwork: logical service a client called ("catalog"). */
  target: "meshwork.target",
  /** Meshwork: attempts a client call made so far. */
  attempts: "meshwork.attempts",
  attempt: "meshwork.attempt",
  outcome: "meshwork.outcome",
} as const;

/** Tracer name of every Meshwork span. */
export const TRACER_NAME = "meshwork";

/**
 * Looked up per call (a map lookup): a tracer cached at module load would keep pointing at a
 * provider that was shut down and replaced (tests restart telemetry).
 */
export function tracer(): Tracer {
  return trace.getTracer(TRACER_NAME);
}

/** Server span status per the RPC conventions: only these codes mean the server failed. */
const SERVER_FAULTS = new Set<Code>([Code.Unknown, Code.DeadlineExceeded, Code.Unimplemented, Code.Internal, Code.Unavailable, Code.DataLoss]);

/** Reads the inbound trace context straight from the call's metadata (no Headers conversion). */
const callHeadersGetter: TextMapGetter<HandlerContext> = {
  get: (ctx, key) => requestHeaderValue(ctx, key),
  keys: (ctx) => requestHeaderKeys(ctx),
};

const headersSetter: TextMapSetter<Headers> = {
  set: (h, key, value) => h.set(key, value),
};

const metadataSetter: TextMapSetter<Metadata> = {
  set: setMetadataHeader,
};

/**
 * The client span of a logical call, in the call's context values: policy and balancer hooks find
 * it through the transport's {@link hookCallValues}, without an AsyncLocalStorage scope per call.
 */
const CLIENT_SPAN: ContextKey<Span | undefined> = createValueKey<Span | undefined>(undefined, { description: "meshwork client call span" });

/** The logical service of a gRPC service: its first package segment ("catalog" for catalog.v1.CatalogService), as mesh/runtime names it. */
export function defaultTarget(service: DescService): string {
  return service.typeName.split(".")[0];
}

function rpcAttributes(service: string, method: string): Attributes {
  return { [ATTR.rpcSystem]: "grpc", [ATTR.rpcService]: service, [ATTR.rpcMethod]: method };
}

/** What a span of one method is named and starts with, built once per method (spans copy the attributes). */
interface MethodNames {
  service: string;
  method: string;
  spanName: string;
  attributes: Attributes;
}

/** A server method's names, span options and metrics recorder, resolved once per method. */
interface ServerNames extends MethodNames {
  /** The SDK copies the options' attributes into each span: one object per method serves all calls. */
  options: SpanOptions;
  metrics: CallRecorder;
}

const serverNames = new WeakMap<DescMethod, ServerNames>();

function serverNamesOf(m: DescMethod): ServerNames {
  let n = serverNames.get(m);
  if (!n) {
    const service = m.parent.typeName;
    const attributes = rpcAttributes(service, m.name);
    n = { service, method: m.name, spanName: `${service}/${m.name}`, attributes, options: { kind: SpanKind.SERVER, attributes }, metrics: meshMetrics.serverRecorder(service, m.name) };
    serverNames.set(m, n);
  }
  return n;
}

/** The ConnectError a call ended with; the adapter turns anything else into Internal, so do we. */
function asConnectError(err: unknown): ConnectError {
  if (err instanceof ConnectError) return err;
  return new ConnectError(err instanceof Error ? err.message : String(err), Code.Internal);
}

function recordUnexpected(span: Span, err: unknown): void {
  // Only unexpected errors carry a stack worth keeping; ConnectErrors are answers.
  if (!(err instanceof ConnectError) && err instanceof Error) span.recordException(err);
}

/**
 * Server middleware for the grpc-js adapter (install it outermost): continues the caller's trace
 * from `traceparent`/`tracestate`, runs the handler inside a SERVER span named
 * `<package.Service>/<Method>` with the RPC attributes, and records `rpc_server_requests_total`
 * and `rpc_server_duration_seconds`. The span ends when the handler settles, or at the deadline /
 * client cancel if that comes first (the adapter answers then even if the handler runs on).
 */
export function tracingMiddleware(): ServerMiddleware {
  // Not an async function: fewer promises per call (each also costs an AsyncLocalStorage hook
  // while telemetry runs).
  return (ctx, next) => {
    const names = serverNamesOf(ctx.method);
    const parent = propagation.extract(ROOT_CONTEXT, ctx, callHeadersGetter);
    const s = new ServerCallSpan(tracer().startSpan(names.spanName, names.options, parent), names.metrics, ctx.method.methodKind !== "unary");
    // On a mesh adapter call the span is told of the abort (ending it at the deadline / client
    // cancel even if the handler runs on) and of the chain settling — installed outermost, that is
    // this middleware's `next()` settling — without a promise or closure of our own.
    if (observeCall(ctx, s)) return context.with(trace.setSpan(parent, s.span), next);
    onCallAbort(ctx, (reason) => s.aborted(reason));
    let work: Promise<void>;
    try {
      work = context.with(trace.setSpan(parent, s.span), next);
    } catch (e) {
      s.failed(e);
      return Promise.reject(e);
    }
    return work.then(
      () => s.end(undefined),
      (e: unknown) => {
        s.failed(e);
        throw e;
      },
    );
  };
}

/**
 * The span and RED metrics of one call, server or client, ended once (an object, not per-call
 * closures): the status code attribute, ERROR status when `isFault(code)` says so, the duration
 * histogram (unary calls only) and the request counter.
 */
abstract class CallSpanBase {
  private readonly started = performance.now();
  protected ended = false;

  constructor(
    readonly span: Span,
    private readonly metrics: CallRecorder,
    private readonly streaming: boolean,
  ) {}

  /** Whether a call that ended with `code` failed on this side (sets the span's ERROR status). */
  protected abstract isFault(code: Code): boolean;

  protected finish(err: ConnectError | undefined): void {
    if (this.ended) return;
    this.ended = true;
    const durationMs = performance.now() - this.started;
    const span = this.span;
    span.setAttribute(ATTR.rpcGrpcStatusCode, err ? err.code : 0);
    if (err && this.isFault(err.code)) span.setStatus({ code: SpanStatusCode.ERROR, message: err.rawMessage });
    span.end();
    this.metrics.record(err?.code, this.streaming ? undefined : durationMs);
  }
}

/** A server call's span: only server faults are errors (RPC conventions); also the call's observer. */
class ServerCallSpan extends CallSpanBase implements CallObserver {
  protected isFault(code: Code): boolean {
    return SERVER_FAULTS.has(code);
  }

  end(err: ConnectError | undefined): void {
    this.finish(err);
  }

  failed(e: unknown): void {
    if (this.ended) return;
    recordUnexpected(this.span, e);
    this.end(asConnectError(e));
  }

  /** At the deadline / client cancel / shutdown; a later end is ignored. */
  aborted(reason: unknown): void {
    this.end(reason instanceof ConnectError ? reason : new ConnectError("call cancelled", Code.Canceled));
  }

  settled(e: unknown, failed: boolean): void {
    if (failed) this.failed(e);
    else this.end(undefined);
  }
}

/** Options for {@link tracingInterceptor}. */
export interface TracingInterceptorOptions {
  /** Logical name of the called service for metrics labels; default {@link defaultTarget}. */
  target?: (service: DescService) => string;
}

/**
 * Connect interceptor for the mesh transport (and any Connect client): one CLIENT span per logical
 * call (all attempts), `traceparent`/`tracestate` injected into the call's grpc metadata (a mesh
 * transport's `outgoingMetadata`; the request headers on other transports), and
 * `rpc_client_requests_total` / `rpc_client_duration_seconds`.
 * Attempts, retries, ejections and breaker rejections become events on this span through
 * {@link recordAttempt} and friends, called from the policy and balancer hooks. Any non-OK code
 * sets the span status to ERROR (client-side RPC convention). A server stream's span ends when
 * the stream is drained or fails. The span is not made the active context inside the transport
 * (the hooks find it in the call's context values): code run by later interceptors sees the
 * caller's active span.
 */
export function tracingInterceptor(opts: TracingInterceptorOptions = {}): Interceptor {
  const targetOf = opts.target ?? defaultTarget;
  // Per method: names, target, span options and metrics recorder (the target is fixed per service).
  const names = new WeakMap<DescMethod, ClientNames>();
  const namesOf = (m: DescMethod) => {
    let n = names.get(m);
    if (!n) {
      const service = m.parent.typeName;
      const target = targetOf(m.parent);
      const attributes = { ...rpcAttributes(service, m.name), [ATTR.target]: target };
      // The SDK copies the options' attributes into each span: one object per method serves all.
      n = { service, method: m.name, spanName: `${service}/${m.name}`, attributes, options: { kind: SpanKind.CLIENT, attributes }, metrics: meshMetrics.clientRecorder(target, service, m.name) };
      names.set(m, n);
    }
    return n;
  };
  // Not an async function: one promise per call fewer (an async function's own, plus its await).
  return (next) => (req) => {
    let call: ClientCallSpan;
    let res: Promise<UnaryResponse | StreamResponse>;
    try {
      const n = namesOf(req.method);
      const parent = context.active();
      const span = tracer().startSpan(n.spanName, n.options, parent);
      const ctx = trace.setSpan(parent, span);
      const md = outgoingMetadata(req);
      if (md) propagation.inject(ctx, md, metadataSetter);
      else propagation.inject(ctx, req.header, headersSetter);
      call = new ClientCallSpan(span, req.contextValues, n.metrics, req.stream);
    } catch (e) {
      return Promise.reject(e);
    }
    try {
      // No context.with around the call: nothing inside the transport reads the active context
      // but the hooks, which find the span in the call's values. An AsyncLocalStorage scope per
      // call would cost a run() here and, in a process that is only a client, enable the
      // storage's hook on every promise of the process.
      res = next({ ...req, contextValues: call });
    } catch (e) {
      call.end(e);
      return Promise.reject(e);
    }
    return res.then(
      (r) => {
        if (!r.stream) {
          call.end(undefined);
          return r;
        }
        return { ...r, message: endWhenDrained(r.message, call) } as StreamResponse;
      },
      (e: unknown) => {
        call.end(e);
        throw e;
      },
    );
  };
}

/** What {@link tracingInterceptor} resolves once per method. */
interface ClientNames extends MethodNames {
  options: SpanOptions;
  metrics: CallRecorder;
}

/**
 * The CLIENT span and RED metrics of one logical call, ended once (an object, not per-call
 * closures). It is also the call's context values: reads of {@link CLIENT_SPAN} answer this
 * call's span, everything else (reads and writes) goes to the values the caller passed, which
 * calls may share (a hedged call and its hedge share their tried endpoints).
 */
class ClientCallSpan extends CallSpanBase implements ContextValues {
  constructor(
    span: Span,
    private readonly values: ContextValues,
    metrics: CallRecorder,
    streaming: boolean,
  ) {
    super(span, metrics, streaming);
  }

  /** Any non-OK code is an error on the client side (RPC conventions). */
  protected isFault(): boolean {
    return true;
  }

  get<T>(key: ContextKey<T>): T {
    return key.id === CLIENT_SPAN.id ? (this.span as T) : this.values.get(key);
  }

  set<T>(key: ContextKey<T>, value: T): this {
    this.values.set(key, value);
    return this;
  }

  delete(key: ContextKey<unknown>): this {
    this.values.delete(key);
    return this;
  }

  end(e: unknown): void {
    if (this.ended) return;
    this.finish(e === undefined ? undefined : ConnectError.from(e));
  }
}

async function* endWhenDrained<T>(messages: AsyncIterable<T>, call: ClientCallSpan): AsyncIterable<T> {
  try {
    yield* messages;
    call.end(undefined);
  } catch (e) {
    call.end(e);
    throw e;
  } finally {
    // The reader stopped early (break/return): the call did what the caller wanted.
    call.end(undefined);
  }
}

/** The span a client-side hook should annotate: the logical call's client span, else the active span. */
function callSpan(): Span | undefined {
  return hookCallValues()?.get(CLIENT_SPAN) ?? trace.getActiveSpan();
}

/** Adds an event to the active span (no-op outside a span). For ad-hoc notes from any module. */
export function recordEvent(name: string, attributes?: Attributes): void {
  trace.getActiveSpan()?.addEvent(name, attributes);
}

interface EndpointParts {
  address: string;
  port: number | undefined;
  /** The event of a first attempt that succeeded here, the usual case: built once (the SDK copies event attributes). */
  firstSuccess?: Attributes;
}

// Endpoints are few and long-lived; the bound only matters for a process that sees endless churn.
const ENDPOINT_CACHE_LIMIT = 1_000;
const endpointParts = new Map<string, EndpointParts>();

function endpointPartsOf(endpoint: string): EndpointParts {
  let p = endpointParts.get(endpoint);
  if (!p) {
    const i = endpoint.lastIndexOf(":");
    const port = Number(endpoint.slice(i + 1));
    p = i <= 0 || !Number.isInteger(port) ? { address: endpoint, port: undefined } : { address: endpoint.slice(0, i).replace(/^\[|\]$/g, ""), port };
    if (endpointParts.size >= ENDPOINT_CACHE_LIMIT) endpointParts.clear();
    endpointParts.set(endpoint, p);
  }
  return p;
}

function splitEndpoint(endpoint: string): Attributes {
  const p = endpointPartsOf(endpoint);
  return p.port === undefined ? { [ATTR.serverAddress]: p.address } : { [ATTR.serverAddress]: p.address, [ATTR.serverPort]: p.port };
}

/**
 * Records one finished attempt: `rpc_client_attempts_total` (and `rpc_client_retries_total` when
 * `attempt` > 1), plus an "attempt" (first try) or "retry" event on the call's span with the
 * attempt number, endpoint, outcome and code. Same shape as `CallPolicy.onAttempt`, so a policy
 * calls it straight from there: `onAttempt: (m, e, o, c, a) => recordAttempt(m, e, o, c, a)`.
 */
export function recordAttempt(method: DescMethod, endpoint: string, outcome: string, code: Code | undefined, attempt: number, target = defaultTarget(method.parent)): void {
  meshMetrics.clientAttempt(target, method.name, attempt);
  const span = callSpan();
  if (!span || !span.isRecording()) return;
  const where = endpointPartsOf(endpoint);
  const first = attempt === 1 && code === undefined && outcome === "success";
  span.addEvent(attempt > 1 ? "retry" : "attempt", first ? (where.firstSuccess ??= attemptEvent(where, 1, outcome, 0)) : attemptEvent(where, attempt, outcome, code ?? 0));
  // The endpoint of the last attempt is the one that answered.
  span.setAttribute(ATTR.serverAddress, where.address);
  if (where.port !== undefined) span.setAttribute(ATTR.serverPort, where.port);
  span.setAttribute(ATTR.attempts, attempt);
}

function attemptEvent(where: EndpointParts, attempt: number, outcome: string, code: number): Attributes {
  const event: Attributes = { [ATTR.attempt]: attempt, [ATTR.serverAddress]: where.address };
  if (where.port !== undefined) event[ATTR.serverPort] = where.port;
  event[ATTR.outcome] = outcome;
  event[ATTR.rpcGrpcStatusCode] = code;
  return event;
}

/** A retry the policy wanted but its budget/token bucket refused: metric plus a span event. */
export function recordRetryThrottled(method: DescMethod, attempt: number, target = defaultTarget(method.parent)): void {
  meshMetrics.retryThrottled(target, method.name);
  callSpan()?.addEvent("retry_throttled", { [ATTR.attempt]: attempt });
}

/** The circuit breaker refused a call before any attempt: a span event (the call itself ends with the breaker's code). */
export function recordBreakerRejection(method: DescMethod, target = defaultTarget(method.parent), reason?: string): void {
  callSpan()?.addEvent("breaker_rejected", { [ATTR.target]: target, ...(reason ? { "meshwork.reason": reason } : {}) });
}

/**
 * Wraps a call policy so its attempts and refusals show up in telemetry: every attempt goes
 * through {@link recordAttempt} after the policy's own `onAttempt`, and a `begin` that throws (the
 * circuit breaker refusing the call) is recorded with {@link recordBreakerRejection}. Everything
 * else is the policy itself (the wrapper inherits from it). Retries refused by the throttle or
 * budget are only visible inside the policy: it calls {@link recordRetryThrottled} itself.
 */
export function instrumentPolicy<P extends CallPolicy>(policy: P, target?: string): P {
  const wrapped = Object.create(policy) as P;
  wrapped.begin = (method) => {
    try {
      return policy.begin?.(method);
    } catch (e) {
      recordBreakerRejection(method, target ?? defaultTarget(method.parent), e instanceof Error ? e.message : String(e));
      throw e;
    }
  };
  wrapped.onAttempt = (method, endpoint, outcome, code, attempt) => {
    policy.onAttempt?.(method, endpoint, outcome, code, attempt);
    recordAttempt(method, endpoint, outcome, code, attempt, target ?? defaultTarget(method.parent));
  };
  return wrapped;
}

/**
 * An endpoint was ejected or readmitted (from `BalancerOptions.onEjection`): an event on the call
 * whose outcome triggered it. The gauge side is {@link observeClient}.
 */
export function recordEjection(endpoint: string, ejected: boolean, untilMs: number): void {
  const attrs: Attributes = { ...splitEndpoint(endpoint) };
  if (ejected) attrs["meshwork.ejected_until"] = new Date(untilMs).toISOString();
  callSpan()?.addEvent(ejected ? "endpoint_ejected" : "endpoint_readmitted", attrs);
}
