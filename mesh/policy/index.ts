/**
 * Resilience of mesh calls. Client side: {@link createCallPolicy} — the `CallPolicy` of one
 * upstream service for `createMeshTransport` (deadlines inherited from the inbound call, gRFC A6
 * retries with pushback, A6 throttling plus a Linkerd-style retry budget, a circuit breaker) — and
 * optional hedging with {@link withHedging}. Server side: {@link createConcurrencyLimit}, a
 * bulkhead middleware that sheds load with ResourceExhausted and a retry pushback.
 *
 * ```ts
 * const policy = createCallPolicy({ service: "inventory", onBreakerStateChange: (s, st) => log.warn({ s, st }) });
 * const transport = createMeshTransport({ endpoints, serviceName: "inventory", policy });
 * const limit = createConcurrencyLimit({ service: "orders" });
 * grpcImplementation(OrderService, impl, { middleware: [limit.middleware, deadlineMiddleware()], timeoutFor: serverTimeouts() });
 * ```
 */
export { createCallPolicy, MAX_ATTEMPTS_CAP, DEADLINE_MARGIN_MS, type CallPolicyOptions, type MethodPolicy, type ServiceCallPolicy } from "./call-policy.js";
export { retryBackoffMs, DEFAULT_BACKOFF, type BackoffOptions } from "./backoff.js";
export { RetryThrottle, type RetryThrottleOptions } from "./retry-throttle.js";
export { RetryBudget, type RetryBudgetOptions } from "./retry-budget.js";
export { CircuitBreaker, breakerOutcome, type BreakerState, type CallOutcome, type CircuitBreakerOptions } from "./circuit-breaker.js";
export { decideRetry, neverReachedServer, isStreamReset, parsePushback, type FailedAttempt, type RetryDecision, type RetryVerdict } from "./retry-decision.js";
export { createConcurrencyLimit, type ConcurrencyLimit, type ConcurrencyLimitOptions, type ConcurrencyLimitStats } from "./concurrency-limit.js";
export { withHedging } from "./hedging.js";
