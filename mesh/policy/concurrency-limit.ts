import { Code, ConnectError, type HandlerContext } from "@connectrpc/connect";
import { observeCall, type CallObserver, type ServerMiddleware } from "../grpc/index.js";

/** Options of {@link createConcurrencyLimit}. */
export interface ConcurrencyLimitOptions {
  /** Service name for errors. */
  service?: string;
  /**
   * Handlers running at once. Default 64: handlers mostly await I/O, and 64 in flight at ~10 ms
   * each is ~6,400 calls/s, about what one core's grpc-js server carries (8,600/s, TOOLCHAIN.md);
   * more in flight only lengthens every call.
   */
  limit?: number;
  /**
   * Calls waiting for a slot. Default limit / 2. Besides this bound a call only queues while its
   * expected wait is at most half a handler time, so admitted calls take at most ~1.5× an unloaded
   * call; waiting longer is better spent on another replica.
   */
  queue?: number;
  /** Longest pushback sent. Default 1 s, A6's example maxBackoff: more would outlast most deadlines. */
  maxPushbackMs?: number;
}

/** Counters of a {@link ConcurrencyLimit}. */
export interface ConcurrencyLimitStats {
  active: number;
  queued: number;
  rejected: number;
  /** Moving average of a handler's run time (ms), undefined before the first call ends. */
  serviceTimeMs: number | undefined;
}

/** A per-service bulkhead: its middleware and counters. */
export interface ConcurrencyLimit {
  readonly middleware: ServerMiddleware;
  stats(): ConcurrencyLimitStats;
}

interface Waiter {
  admit(startedAt: number): void;
}

/**
 * A bulkhead for one service as server middleware: at most `limit` handlers run, at most `queue`
 * calls wait (first in, first out). A call is answered ResourceExhausted at once, with
 * `grpc-retry-pushback-ms` (the expected wait) in its trailer, when the queue is full, when its
 * expected wait exceeds half a handler time, or when its remaining deadline is shorter than the
 * expected wait plus one handler time — it could only time out. Hand-written: cockatiel's bulkhead
 * cannot reject on the caller's deadline. Install it before other middleware so that shed calls
 * cost nothing.
 */
export function createConcurrencyLimit(opts: ConcurrencyLimitOptions = {}): ConcurrencyLimit {
  const limit = opts.limit ?? 64;
  const queueSize = opts.queue ?? Math.floor(limit / 2);
  const maxPushbackMs = opts.maxPushbackMs ?? 1_000;
  const service = opts.service ?? "service";
  const waiting: Waiter[] = [];
  /** Start times of the running handlers, oldest first (admission order). */
  const running: number[] = [];
  let rejected = 0;
  let serviceTimeMs: number | undefined;

  /**
   * Expected wait of a call queued at `position` (1-based): it gets the slot of the handler that
   * started `position`-th earliest, once that one has run a service time (a later round of the
   * limit for long queues). Zero before the first call has finished.
   */
  const expectedWaitMs = (position: number, now: number) => {
    if (serviceTimeMs === undefined || running.length === 0) return 0;
    const k = (position - 1) % running.length;
    const rounds = Math.floor((position - 1) / running.length) + 1;
    return Math.max(0, running[k] + rounds * serviceTimeMs - now);
  };

  const reject = (why: string, waitMs: number): ConnectError => {
    rejected++;
    const pushback = Math.min(maxPushbackMs, Math.max(1, Math.ceil(waitMs)));
    return new ConnectError(`${service} is overloaded: ${why}`, Code.ResourceExhausted, { "grpc-retry-pushback-ms": String(pushback) });
  };

  /** Takes a slot (now or after queueing); resolves with the time the handler may start. */
  const acquire = (ctx: HandlerContext): Promise<number> | number => {
    const now = performance.now();
    if (running.length < limit && waiting.length === 0) {
      running.push(now);
      return now;
    }
    const wait = expectedWaitMs(waiting.length + 1, now);
    const work = serviceTimeMs ?? 0;
    if (waiting.length >= queueSize) throw reject(`${running.length} calls running (limit ${limit}) and ${waiting.length} queued (limit ${queueSize})`, wait);
    if (wait > work / 2) throw reject(`the expected queue wait of ${Math.round(wait)} ms exceeds half a call's ${Math.round(work)} ms`, wait);
    const left = ctx.timeoutMs();
    if (left !== undefined && left < wait + work) {
      throw reject(`${Math.round(left)} ms left, but the expected queue wait is ${Math.round(wait)} ms plus ${Math.round(work)} ms of work`, wait);
    }
    return new Promise<number>((resolve, rejectWait) => {
      const waiter: Waiter = {
        admit: (startedAt) => {
          ctx.signal.removeEventListener("abort", onAbort);
          resolve(startedAt);
        },
      };
      // The adapter answers the caller when the signal aborts; just leave the queue.
      const onAbort = () => {
        const i = waiting.indexOf(waiter);
        if (i >= 0) waiting.splice(i, 1);
        rejectWait(ctx.signal.reason);
      };
      ctx.signal.addEventListener("abort", onAbort, { once: true });
      waiting.push(waiter);
    });
  };

  const release = (started: number) => {
    running.splice(running.indexOf(started), 1);
    const next = waiting.shift();
    if (!next) return;
    // The slot passes straight to the next waiter, taken now so no newcomer can slip in between.
    const now = performance.now();
    running.push(now);
    next.admit(now);
  };

  const finished = (started: number) => {
    const took = performance.now() - started;
    // α = 0.2 weights the last ~5 calls: follows a change of load within a handful of calls.
    serviceTimeMs = serviceTimeMs === undefined ? took : serviceTimeMs + 0.2 * (took - serviceTimeMs);
    release(started);
  };

  /** A taken slot, released when the adapter reports the chain settled (an object, not a closure per call). */
  class Slot implements CallObserver {
    constructor(private readonly started: number) {}

    settled(): void {
      finished(this.started);
    }
  }

  // Not an async function: fewer promises per call than async/await/finally; on a mesh adapter
  // call none at all (the adapter reports the end of the chain; only tracing, which adds no
  // asynchronous work, is outside the limit in createMeshServer).
  const runAdmitted = (ctx: HandlerContext, started: number, next: () => Promise<void>): Promise<void> => {
    if (observeCall(ctx, new Slot(started))) {
      try {
        return next();
      } catch (e) {
        return Promise.reject(e);
      }
    }
    let work: Promise<void>;
    try {
      work = next();
    } catch (e) {
      finished(started);
      return Promise.reject(e);
    }
    return work.then(
      () => finished(started),
      (e: unknown) => {
        finished(started);
        throw e;
      },
    );
  };

  const middleware: ServerMiddleware = (ctx, next) => {
    let slot: Promise<number> | number;
    try {
      slot = acquire(ctx);
    } catch (e) {
      return Promise.reject(e);
    }
    // Admitted at once (the usual case): no await on a plain number, one promise less per call.
    return typeof slot === "number" ? runAdmitted(ctx, slot, next) : slot.then((started) => runAdmitted(ctx, started, next));
  };

  return { middleware, stats: () => ({ active: running.length, queued: waiting.length, rejected, serviceTimeMs }) };
}
