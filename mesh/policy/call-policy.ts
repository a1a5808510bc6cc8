import { ScalarType, type DescField, type DescMethod, type Message } from "@bufbuild/protobuf";
import { MethodOptions_IdempotencyLevel } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError } from "@connectrpc/connect";
import type { AttemptInfo, CallPolicy } from "../client/index.js";
import { NEVER_ABORTED } from "../grpc/index.js";
import { currentScope, methodTimeoutMs } from "../deadline/index.js";
import { DEFAULT_BACKOFF, retryBackoffMs, type BackoffOptions } from "./backoff.js";
import { breakerOutcome, CircuitBreaker, type BreakerState, type CallOutcome, type CircuitBreakerOptions } from "./circuit-breaker.js";
import { RetryBudget, type RetryBudgetOptions } from "./retry-budget.js";
import { decideRetry, parsePushback } from "./retry-decision.js";
import { RetryThrottle, type RetryThrottleOptions } from "./retry-throttle.js";

/**
 * The last signal combined with each inbound signal, reused by the handler's following calls with
 * the same signal. On Node 20 every `AbortSignal.any` leaves an entry in each source's dependant
 * set until that source aborts (~70 B; measured in bench/deadline/signal-hook.ts), so a
 * long-lived signal passed to every call would grow by one per call; this makes it one per
 * handler, and saves the allocation on each call after the first.
 */
const combinedByInbound = new WeakMap<AbortSignal, { signal: AbortSignal; combined: AbortSignal }>();

function combined(signal: AbortSignal, inbound: AbortSignal): AbortSignal {
  const last = combinedByInbound.get(inbound);
  if (last?.signal === signal) return last.combined;
  const c = AbortSignal.any([signal, inbound]);
  combinedByInbound.set(inbound, { signal, combined: c });
  return c;
}

/** gRFC A6: maxAttempts (the first try included) above 5 is treated as 5. */
export const MAX_ATTEMPTS_CAP = 5;

/**
 * Below this many ms left a call fails DeadlineExceeded without being sent: a grpc-js round trip
 * is ~0.3 ms on loopback and ~2 ms through a two-process chain (TOOLCHAIN.md), so with < 5 ms the
 * answer would almost surely arrive too late and the server's work would be wasted.
 */
export const DEADLINE_MARGIN_MS = 5;

/** Per-method overrides of {@link CallPolicyOptions}. */
export interface MethodPolicy {
  /** Longest deadline of the call in ms (0 = none); default from the contract's meshwork timeout. */
  timeoutMs?: number;
  /** Attempts including the first, capped at 5. */
  maxAttempts?: number;
  /** Status codes retried (besides stream resets and ResourceExhausted with pushback). */
  retryableCodes?: Code[];
  /** Overrides the contract's idempotency_level: true = safe to retry, false = never retry once sent. */
  idempotent?: boolean;
  /**
   * Hedging for methods without side effects: after this many ms without an answer a second
   * attempt is sent (see {@link withHedging}); off when absent.
   */
  hedgeAfterMs?: number;
  /** Per-try timeout in ms of this method (see {@link CallPolicyOptions.perTryTimeoutMs}); 0 = none. */
  perTryTimeoutMs?: number;
}

/** Options of {@link createCallPolicy}. */
export interface CallPolicyOptions {
  /** The upstream service's name, for errors and breaker events. */
  service: string;
  /** Overrides by proto method name ("Reserve"). */
  methods?: Record<string, MethodPolicy>;
  /**
   * Attempts including the first. Default 3: a retry goes to a replica not yet tried, so with the
   * usual three replicas every replica is tried once; A6 caps it at 5.
   */
  maxAttempts?: number;
  /** Default [Unavailable], A6's example and the code grpc-js gives for dropped/refused connections. */
  retryableCodes?: Code[];
  /** Backoff between attempts; default A6's example (100 ms, ×2, max 1 s). */
  backoff?: Partial<BackoffOptions>;
  /** A6 token bucket; `false` disables it. */
  throttle?: RetryThrottleOptions | false;
  /** Linkerd-style retry budget; `false` disables it. */
  budget?: RetryBudgetOptions | false;
  /** Circuit breaker of the service; `false` disables it. */
  breaker?: CircuitBreakerOptions | false;
  /** Called when the circuit breaker changes state (metrics hook here). */
  onBreakerStateChange?: (service: string, state: BreakerState) => void;
  /** Deadline for methods whose contract sets no meshwork timeout (default 10 s, see mesh/deadline). */
  defaultTimeoutMs?: number;
  /**
   * Per-try timeout in ms (Envoy's per_try_timeout) of safe unary methods: an attempt that has not
   * answered by then is cancelled and the call moves on to another endpoint, which counts the
   * silence as a failure for outlier ejection. The last allowed attempt gets whatever is left of
   * the call's deadline, and no attempt outlives it. 0 = none. Default: the method's timeout ÷
   * maxAttempts (GetProduct: 2 s ÷ 3 = 666 ms), so that every allowed attempt fits in the
   * deadline and a frozen replica costs a call one share of it, not all of it (R5). Streams and
   * unsafe methods have none: a stream's attempts end at its headers, and an unsafe attempt cut
   * short could not be retried anyway.
   */
  perTryTimeoutMs?: number;
  /** See {@link DEADLINE_MARGIN_MS}. */
  deadlineMarginMs?: number;
  /** Random source for the backoff jitter (tests). */
  random?: () => number;
}

/** A {@link CallPolicy} for one upstream service, with its shared retry and breaker state. */
export interface ServiceCallPolicy extends CallPolicy {
  readonly service: string;
  readonly throttle: RetryThrottle | undefined;
  readonly budget: RetryBudget | undefined;
  readonly breaker: CircuitBreaker | undefined;
  /** The resolved hedging delay of a method, undefined when it is not hedged. */
  hedgeAfterMs(method: DescMethod): number | undefined;
}

interface Resolved {
  timeoutMs: number | undefined;
  maxAttempts: number;
  retryableCodes: ReadonlySet<Code>;
  /** "always" / "never", or the idempotency_key field whose non-empty value makes it safe. */
  safety: "always" | "never" | DescField;
  hedgeAfterMs: number | undefined;
  /** Undefined when the method has no per-try timeout (streams, never-safe methods, 0). */
  perTryTimeoutMs: number | undefined;
}

/**
 * The resilience policy of calls to one upstream service, to pass as `policy` to
 * `createMeshTransport`. Defaults come from the contract (idempotency_level, meshwork timeout)
 * and the figures in RELIABILITY.md:
 * - deadlines: the caller's timeout, the inbound call's remaining time (mesh/deadline) and the
 *   method's timeout, whichever is shortest; cancellation of the inbound call cancels the call;
 * - retries per gRFC A6 ({@link decideRetry}): full-jitter backoff or the server's pushback, to a
 *   replica not yet tried, only before response headers, only for safe methods unless the
 *   request never reached a server;
 * - per-try timeouts of safe unary calls (Envoy's per_try_timeout, see
 *   {@link CallPolicyOptions.perTryTimeoutMs}): an attempt that does not answer in its share of
 *   the deadline moves on to another replica;
 * - retry throttling: A6's token bucket and a Linkerd-style budget — when either refuses, the call
 *   fails fast with the last error;
 * - a circuit breaker over the service's endpoint-ish failures.
 *
 * ```ts
 * createMeshTransport({ endpoints, serviceName: "inventory", policy: createCallPolicy({ service: "inventory" }) });
 * ```
 */
export function createCallPolicy(opts: CallPolicyOptions): ServiceCallPolicy {
  const service = opts.service;
  const backoff: BackoffOptions = { ...DEFAULT_BACKOFF, ...opts.backoff };
  const margin = opts.deadlineMarginMs ?? DEADLINE_MARGIN_MS;
  const throttle = opts.throttle === false ? undefined : new RetryThrottle(opts.throttle);
  const budget = opts.budget === false ? undefined : new RetryBudget(opts.budget);
  const breaker =
    opts.breaker === false
      ? undefined
      : new CircuitBreaker(service, {
          ...opts.breaker,
          onStateChange: (state) => {
            opts.breaker && opts.breaker.onStateChange?.(state);
            opts.onBreakerStateChange?.(service, state);
          },
        });
  const timeoutOverrides: Record<string, number> = {};
  for (const [name, m] of Object.entries(opts.methods ?? {})) if (m.timeoutMs !== undefined) timeoutOverrides[name] = m.timeoutMs;

  const cache = new Map<DescMethod, Resolved>();
  const resolve = (method: DescMethod): Resolved => {
    let r = cache.get(method);
    if (r) return r;
    const m = opts.methods?.[method.name] ?? {};
    const contractSafe = method.idempotency !== MethodOptions_IdempotencyLevel.IDEMPOTENCY_UNKNOWN;
    const keyField = method.input.fields.find((f) => f.name === "idempotency_key" && f.fieldKind === "scalar" && f.scalar === ScalarType.STRING);
    const safe = m.idempotent ?? (contractSafe ? true : undefined);
    const timeoutMs = methodTimeoutMs(method, { defaultMs: opts.defaultTimeoutMs, methods: timeoutOverrides });
    const maxAttempts = Math.max(1, Math.min(MAX_ATTEMPTS_CAP, m.maxAttempts ?? opts.maxAttempts ?? 3));
    const safety = safe === true ? "always" : safe === false || !keyField ? "never" : keyField;
    const perTry = m.perTryTimeoutMs ?? opts.perTryTimeoutMs ?? (timeoutMs === undefined ? 0 : Math.floor(timeoutMs / maxAttempts));
    r = {
      timeoutMs,
      maxAttempts,
      retryableCodes: new Set(m.retryableCodes ?? opts.retryableCodes ?? [Code.Unavailable]),
      safety,
      // Hedging sends the request twice: only for methods that declare no side effects.
      hedgeAfterMs: method.idempotency === MethodOptions_IdempotencyLevel.NO_SIDE_EFFECTS && method.methodKind === "unary" ? m.hedgeAfterMs : undefined,
      // With one attempt there is nothing to move on to: the call's deadline is the attempt's.
      perTryTimeoutMs: method.methodKind === "unary" && safety !== "never" && maxAttempts > 1 && perTry > 0 ? perTry : undefined,
    };
    cache.set(method, r);
    return r;
  };
  let lastDone: ((outcome: CallOutcome) => void) | undefined;
  let lastCompletion: ((ok: boolean, code?: Code) => void) | undefined;
  const isSafe = (r: Resolved, request: Message): boolean => {
    if (typeof r.safety === "string") return r.safety === "always";
    const v = (request as unknown as Record<string, unknown>)[r.safety.localName];
    return typeof v === "string" && v.length > 0;
  };

  return {
    service,
    throttle,
    budget,
    breaker,
    hedgeAfterMs: (method) => resolve(method).hedgeAfterMs,

    timeoutMs(method, requested) {
      const scope = currentScope();
      const inbound = scope?.signal;
      if (inbound?.aborted) throw ConnectError.from(inbound.reason, Code.Canceled);
      // The shortest of the caller's timeout, the inbound call's remaining time and the method's limit.
      let t = requested;
      const left = scope?.deadline === undefined ? undefined : scope.deadline - Date.now();
      if (left !== undefined && (t === undefined || left < t)) t = left;
      const max = resolve(method).timeoutMs;
      if (max !== undefined && (t === undefined || max < t)) t = max;
      if (t === undefined) return undefined;
      if (t < margin) {
        throw new ConnectError(`${Math.max(0, Math.round(t))} ms left for ${method.parent.typeName}/${method.name}, below the ${margin} ms margin: not sent`, Code.DeadlineExceeded);
      }
      return t;
    },

    attemptDeadline(method, request, callDeadline, attempt) {
      const r = resolve(method);
      if (r.perTryTimeoutMs === undefined || attempt >= r.maxAttempts || !isSafe(r, request)) return callDeadline;
      const d = Date.now() + r.perTryTimeoutMs;
      // A per-try deadline that would leave the call less than the margin after it is no use: the
      // next attempt could not be sent. The attempt gets the call's deadline instead.
      return callDeadline !== undefined && d > callDeadline - margin ? callDeadline : d;
    },

    signal(_method, signal) {
      const inbound = currentScope()?.signal;
      if (!inbound) return signal;
      // A handler passing its own `ctx.signal` (the inbound signal itself) needs no combined signal.
      if (signal === NEVER_ABORTED || signal === inbound) return inbound;
      return combined(signal, inbound);
    },

    begin() {
      const done = breaker?.admit();
      budget?.recordRequest();
      if (!done) return undefined;
      // Calls admitted while the breaker is closed share one completion, and so one wrapper.
      if (done !== lastDone) {
        lastDone = done;
        lastCompletion = (ok, code) => done(breakerOutcome(ok, code));
      }
      return lastCompletion;
    },

    retryDelay(info: AttemptInfo) {
      const r = resolve(info.method);
      const ce = info.error.error;
      const pushback = parsePushback(ce.metadata.get("grpc-retry-pushback-ms"));
      const d = decideRetry(
        {
          code: ce.code,
          message: ce.rawMessage,
          headersReceived: info.error.headersReceived,
          unary: info.method.methodKind === "unary",
          safe: isSafe(r, info.request),
          pushback,
          perTryTimeout: info.perTryTimeout,
        },
        r.retryableCodes,
      );
      if (d.countsForThrottle) throttle?.onFailure();
      if (d.verdict === "no" || info.attempt >= r.maxAttempts) return undefined;
      // Transparent retries go at once: nothing reached a server, so there is nothing to back off from.
      if (d.verdict === "transparent") return 0;
      if (throttle && !throttle.allowsRetry()) return undefined;
      if (budget && !budget.tryRetry()) return undefined;
      return typeof pushback === "number" ? pushback : retryBackoffMs(info.attempt, backoff, opts.random);
    },

    onAttempt(_method, _endpoint, _outcome, code) {
      if (code === undefined) throttle?.onSuccess();
    },
  };
}
