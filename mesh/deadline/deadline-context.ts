import { AsyncLocalStorage } from "node:async_hooks";
import { createContextKey, ROOT_CONTEXT, type Context } from "@opentelemetry/api";
import { callDeadlineScope, type ServerMiddleware } from "../grpc/index.js";

/** The deadline and cancellation of the inbound call (or job) that the current code runs for. */
export interface DeadlineScope {
  /** Absolute deadline (epoch ms), undefined when the inbound call has none. */
  deadline: number | undefined;
  /** Aborted when the inbound call is cancelled, times out or its server shuts down. */
  signal: AbortSignal | undefined;
}

/**
 * The process's one AsyncLocalStorage: its store is an OpenTelemetry `Context`, the deadline scope
 * is a value in it, and mesh/telemetry's context manager keeps the trace context in the same
 * store. Every enabled AsyncLocalStorage costs on every promise the process creates (Node 20
 * copies each storage's store onto each new async resource), so one storage instead of two.
 */
export const ambientStorage = new AsyncLocalStorage<Context>();

const SCOPE = createContextKey("meshwork deadline scope");

function scopeOf(ctx: Context | undefined): DeadlineScope | undefined {
  return ctx?.getValue(SCOPE) as DeadlineScope | undefined;
}

function runInScope<T>(scope: DeadlineScope, fn: () => T): T {
  return ambientStorage.run((ambientStorage.getStore() ?? ROOT_CONTEXT).setValue(SCOPE, scope), fn);
}

/**
 * `next` with the deadline scope of the current one when `next` has none: an OpenTelemetry
 * context switch (a span made active, a trace context extracted from a message) does not leave
 * the deadline scope, as with two separate storages. For mesh/telemetry's context manager.
 */
export function keepDeadlineScope(next: Context): Context {
  if (next.getValue(SCOPE) !== undefined) return next;
  const scope = scopeOf(ambientStorage.getStore());
  return scope === undefined ? next : next.setValue(SCOPE, scope);
}

/**
 * Server middleware that makes the inbound call's deadline and signal ambient for everything the
 * handler does: outgoing mesh calls (through the call policy) inherit the remaining time and are
 * cancelled with the inbound call, without any plumbing in handlers. Put it after authentication
 * and load shedding, so work that is refused early never enters the scope.
 */
export function deadlineMiddleware(): ServerMiddleware {
  return (ctx, next) => {
    // A mesh adapter call is its own scope (its deadline, its lazily built signal): no object per call.
    const own = callDeadlineScope(ctx);
    if (own) return runInScope(own, next);
    const left = ctx.timeoutMs();
    // The signal is read only by handlers that call out: building it (an AbortController per
    // call) waits until then.
    const scope: DeadlineScope = {
      deadline: left === undefined ? undefined : Date.now() + left,
      get signal() {
        return ctx.signal;
      },
    };
    return runInScope(scope, next);
  };
}

/**
 * Runs `fn` with an explicit deadline and signal, for work that is not an RPC handler (the events
 * relay, a batch job, a test). Mesh calls made inside inherit them like in a handler. A nested
 * scope can only shorten the deadline of the scope it runs in, never extend it.
 */
export function runWithDeadline<T>(deadline: number | undefined, signal: AbortSignal | undefined, fn: () => T): T {
  const outer = scopeOf(ambientStorage.getStore());
  const d = outer?.deadline === undefined ? deadline : deadline === undefined ? outer.deadline : Math.min(deadline, outer.deadline);
  const signals = [outer?.signal, signal].filter((s): s is AbortSignal => s !== undefined);
  const s = signals.length <= 1 ? signals[0] : AbortSignal.any(signals);
  return runInScope({ deadline: d, signal: s }, fn);
}

/** The deadline scope the current code runs in (one lookup for both deadline and signal), if any. */
export function currentScope(): DeadlineScope | undefined {
  return scopeOf(ambientStorage.getStore());
}

/** Absolute deadline (epoch ms) of the inbound call being handled, or undefined outside one / without one. */
export function currentDeadline(): number | undefined {
  return scopeOf(ambientStorage.getStore())?.deadline;
}

/** Milliseconds left until {@link currentDeadline} (may be ≤ 0), or undefined when there is none. */
export function remainingMs(now = Date.now()): number | undefined {
  const d = currentDeadline();
  return d === undefined ? undefined : d - now;
}

/** The inbound call's AbortSignal, or undefined outside a scope. */
export function currentSignal(): AbortSignal | undefined {
  return scopeOf(ambientStorage.getStore())?.signal;
}
