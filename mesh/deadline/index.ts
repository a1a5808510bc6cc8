/**
 * End-to-end deadlines: the inbound call's deadline and cancellation are carried in
 * AsyncLocalStorage (installed by {@link deadlineMiddleware}), outgoing calls inherit them through
 * the call policy (mesh/policy), and servers cap accepted deadlines at the contract's timeout
 * ({@link serverTimeouts}).
 *
 * ```ts
 * grpcImplementation(OrderService, impl, { middleware: [deadlineMiddleware()], timeoutFor: serverTimeouts() });
 * ```
 */
export { deadlineMiddleware, runWithDeadline, currentDeadline, currentSignal, currentScope, remainingMs, ambientStorage, keepDeadlineScope, type DeadlineScope } from "./deadline-context.js";
export { methodTimeoutMs, serverTimeouts, DEFAULT_METHOD_TIMEOUT_MS, type MethodTimeoutOptions } from "./method-timeout.js";
