import { create, isMessage, type DescMessage, type DescMethod, type DescService, type Message } from "@bufbuild/protobuf";
import { Code, ConnectError, createContextValues, type ContextValues, type HandlerContext, type ServiceImpl } from "@connectrpc/connect";
import type {
  Metadata,
  sendUnaryData,
  ServerUnaryCall,
  ServerWritableStream,
  UntypedHandleCall,
  UntypedServiceImplementation,
} from "@grpc/grpc-js";
import { grpcServiceDefinition, methodPath } from "./definition.js";
import { toGrpcStatus } from "./errors.js";
import { isFastMessage } from "./fast-codec.js";
import { headersToMetadata, metadataToHeaders } from "./metadata.js";

/**
 * Wraps every call a server handles. `next` runs the handler to completion (for a server stream:
 * until the last message is written) and rejects with the handler's error. Middleware sees the
 * same HandlerContext as the handler, so it can read headers, the deadline and the signal.
 */
export type ServerMiddleware = (ctx: HandlerContext, next: () => Promise<void>) => Promise<void>;

/**
 * Per-call state of a middleware that the adapter tells about the call's abort and end (see
 * {@link observeCall}): the middleware's own per-call object is registered, instead of one
 * closure (and its context) per event.
 */
export interface CallObserver {
  /** The call was aborted (deadline, client cancel, shutdown) before it finished; `reason` is a ConnectError. */
  aborted?(reason: ConnectError): void;
  /** The middleware chain settled (see {@link observeCall}). */
  settled?(error: unknown, failed: boolean): void;
}

/** What answers the call when it is aborted: the adapter's per-call object. */
interface CallAnswerer {
  aborted(reason: ConnectError): void;
}

/** Options for {@link grpcImplementation}. */
export interface AdapterOptions {
  /** Outermost first. */
  middleware?: ServerMiddleware[];
  /** Aborted when the server shuts down; every handler's `ctx.signal` follows it. */
  shutdownSignal?: AbortSignal;
  /**
   * Aborted when the server stops accepting calls (graceful drain): open server streams end with
   * Unavailable so their clients re-subscribe on another replica instead of holding the drain.
   */
  drainSignal?: AbortSignal;
  /** Per-call context values (e.g. the verified caller identity is put here by middleware). */
  contextValues?: () => ContextValues;
  /**
   * The deadline a call gets, from the one the client asked for (undefined = none). The resilience
   * layer caps it and applies the method default here.
   */
  timeoutFor?: (method: DescMethod, requestedMs: number | undefined) => number | undefined;
}

// Shared reasons: allocating an error (and its stack) per completed call is measurable at 10k req/s.
// Built on first use, not at import: a ConnectError creates a Headers object, which loads node's
// bundled undici (~2 MiB of heap in every idle service). Its stack is read at once: until then V8
// keeps the frames it captured, and with them the call that happened to build it, for the life of
// the process (mesh/server/call-release.test.ts).
function sharedReason(message: string, code: Code): () => ConnectError {
  let e: ConnectError | undefined;
  return () => {
    if (e === undefined) {
      e = new ConnectError(message, code);
      void e.stack;
    }
    return e;
  };
}
const COMPLETED = sharedReason("call completed", Code.Canceled);
const CANCELLED_BY_CLIENT = sharedReason("cancelled by the client", Code.Canceled);
const SERVER_SHUTDOWN = sharedReason("server shutting down", Code.Unavailable);
const SERVER_DRAINING = sharedReason("server draining: re-subscribe on another replica", Code.Unavailable);

/**
 * The pending deadlines of all calls of the process in a binary min-heap behind one timer,
 * instead of a Node timer per call: each timer is an object, a timer-list insert and removal, and
 * an async_hooks init while telemetry's AsyncLocalStorage is on. The timer is re-armed only when
 * a new deadline is earlier than the armed one or when it fires; most calls end long before their
 * deadline and just leave the heap.
 */
class DeadlineHeap {
  private readonly heap: CallContext[] = [];
  private timer: NodeJS.Timeout | undefined;
  private armedAt = Infinity;

  add(ctx: CallContext): void {
    const h = this.heap;
    ctx.heapIndex = h.length;
    h.push(ctx);
    this.up(ctx.heapIndex);
    if (ctx.deadlineAt < this.armedAt) this.arm(ctx.deadlineAt);
  }

  remove(ctx: CallContext): void {
    const i = ctx.heapIndex;
    if (i < 0) return;
    ctx.heapIndex = -1;
    const h = this.heap;
    const last = h.pop()!;
    if (i === h.length) return;
    h[i] = last;
    last.heapIndex = i;
    this.down(i);
    this.up(last.heapIndex);
    // The armed timer may now be early: it re-arms for the new earliest when it fires.
  }

  private arm(at: number): void {
    if (this.timer) clearTimeout(this.timer);
    this.armedAt = at;
    this.timer = setTimeout(() => this.fire(), Math.max(0, at - Date.now()));
    // Calls in flight keep their server open; a deadline alone must not keep a process alive.
    this.timer.unref();
  }

  private fire(): void {
    this.timer = undefined;
    this.armedAt = Infinity;
    const now = Date.now();
    const h = this.heap;
    while (h.length > 0 && h[0].deadlineAt <= now) {
      const ctx = h[0];
      this.remove(ctx);
      ctx.abort(new ConnectError("the operation timed out", Code.DeadlineExceeded));
    }
    if (h.length > 0) this.arm(h[0].deadlineAt);
  }

  private up(i: number): void {
    const h = this.heap;
    const x = h[i];
    while (i > 0) {
      const p = (i - 1) >> 1;
      if (h[p].deadlineAt <= x.deadlineAt) break;
      h[i] = h[p];
      h[i].heapIndex = i;
      i = p;
    }
    h[i] = x;
    x.heapIndex = i;
  }

  private down(i: number): void {
    const h = this.heap;
    const n = h.length;
    const x = h[i];
    for (;;) {
      let c = 2 * i + 1;
      if (c >= n) break;
      if (c + 1 < n && h[c + 1].deadlineAt < h[c].deadlineAt) c++;
      if (x.deadlineAt <= h[c].deadlineAt) break;
      h[i] = h[c];
      h[i].heapIndex = i;
      i = c;
    }
    h[i] = x;
    x.heapIndex = i;
  }
}

const deadlines = new DeadlineHeap();

/**
 * The HandlerContext of one call. Cheaper than Connect's `createHandlerContext` on the hot path:
 * headers, values and the AbortSignal are created only when a handler or middleware asks for them,
 * and shutdown reaches active calls through one listener per server instead of one per call.
 */
class CallContext implements HandlerContext {
  readonly protocolName = "grpc";
  readonly requestMethod = "POST";
  /** Set once the call is aborted (deadline, client cancel, shutdown). */
  reason: ConnectError | undefined;
  finished = false;
  private controller: AbortController | undefined;
  /** Told at the abort (in order) and when the chain settles (innermost first); see {@link observeCall}. */
  private observers: CallObserver[] | undefined;
  /** Position in {@link deadlines} while the deadline is pending, else -1. */
  heapIndex = -1;
  /** The adapter's own abort handling (answer the call now); run after the observers. */
  answerer: CallAnswerer | undefined = undefined;
  /** The deadline in epoch ms, Infinity without one. */
  readonly deadlineAt: number;
  private reqHeader: Headers | undefined;
  private resHeader: Headers | undefined;
  private resTrailer: Headers | undefined;
  private vals: ContextValues | undefined;

  constructor(
    readonly service: DescService,
    readonly method: DescMethod,
    readonly url: string,
    private readonly metadata: Metadata,
    /** Absolute deadline (epoch ms), undefined without one: with `signal`, the call is its own mesh/deadline scope. */
    readonly deadline: number | undefined,
    private readonly valuesFactory: (() => ContextValues) | undefined,
  ) {
    this.deadlineAt = deadline ?? Infinity;
    if (deadline !== undefined) {
      const ms = deadline - Date.now();
      if (ms <= 0) this.abort(new ConnectError("the operation timed out", Code.DeadlineExceeded));
      else deadlines.add(this);
    }
  }

  get signal(): AbortSignal {
    if (!this.controller) {
      this.controller = new AbortController();
      if (this.reason) this.controller.abort(this.reason);
      else if (this.finished) this.controller.abort(COMPLETED());
    }
    return this.controller.signal;
  }

  timeoutMs(): number | undefined {
    return this.deadline === undefined ? undefined : this.deadline - Date.now();
  }

  get requestHeader(): Headers {
    return (this.reqHeader ??= metadataToHeaders(this.metadata));
  }

  get responseHeader(): Headers {
    return (this.resHeader ??= new Headers());
  }

  get responseTrailer(): Headers {
    return (this.resTrailer ??= new Headers());
  }

  get values(): ContextValues {
    return (this.vals ??= this.valuesFactory ? this.valuesFactory() : createContextValues());
  }

  /** Response header/trailer as metadata, or undefined when nobody set any. */
  headerMetadata(): Metadata | undefined {
    return this.resHeader && hasAny(this.resHeader) ? headersToMetadata(this.resHeader) : undefined;
  }

  trailerMetadata(): Metadata | undefined {
    return this.resTrailer && hasAny(this.resTrailer) ? headersToMetadata(this.resTrailer) : undefined;
  }

  /** See {@link observeCall}. */
  observe(o: CallObserver): void {
    if (this.reason) o.aborted?.(this.reason);
    (this.observers ??= []).push(o);
  }

  /** The middleware chain settled: tells the observers, innermost first (as `.then`s on `next()` would). */
  settle(failed: boolean, error: unknown): void {
    const obs = this.observers;
    if (!obs) return;
    this.observers = undefined;
    for (let i = obs.length - 1; i >= 0; i--) {
      try {
        obs[i].settled?.(error, failed);
      } catch {
        // Bookkeeping (a span, a slot) must not keep the call from being answered.
      }
    }
  }

  /** One request header without building a Headers object (the first value, as `Headers.get` would join them). */
  header(name: string): string | undefined {
    if (this.reqHeader) return this.reqHeader.get(name) ?? undefined;
    const values = this.metadata.get(name);
    if (values.length === 0) return undefined;
    if (values.length === 1 && typeof values[0] === "string") return values[0];
    return this.requestHeader.get(name) ?? undefined;
  }

  /** Request header names, lower case. */
  headerKeys(): string[] {
    return this.reqHeader ? [...this.reqHeader.keys()] : Object.keys(this.metadata.getMap());
  }

  abort(reason: ConnectError): void {
    if (this.reason || this.finished) return;
    this.reason = reason;
    deadlines.remove(this);
    this.controller?.abort(reason);
    // Observers stay registered: they are still told when the chain settles.
    const obs = this.observers;
    if (obs) for (let i = 0; i < obs.length; i++) obs[i].aborted?.(reason);
    // Last, after middleware observers (e.g. the span ends with the abort reason first).
    this.answerer?.aborted(reason);
  }

  /** The call has been answered: stop timers and tell anyone holding the signal. */
  finish(): void {
    if (this.finished) return;
    this.finished = true;
    // The context can outlive the call (it is the handler's ambient deadline scope, and a handler
    // may keep it); past this point it must not hold the grpc-js call (stream, buffers, messages).
    // While it did, every call's objects survived the young-generation GC and were promoted
    // (--trace-gc-nvp: ~2.6 MB per scavenge at 3k calls/s, against 50 KB for plain grpc-js): major
    // GCs cost the server ~15-20 µs of CPU per call. (With no AsyncLocalStorage scope the same
    // happened through the closure this field used to hold.)
    this.answerer = undefined;
    deadlines.remove(this);
    this.controller?.abort(this.reason ?? COMPLETED());
  }
}

/**
 * Calls `fn` with the abort reason if the call is aborted (deadline, client cancel, shutdown)
 * before it finishes. For middleware that must act at the abort (e.g. end a span): on a mesh
 * adapter call it costs an array push instead of the AbortController and listener that
 * `ctx.signal` needs. Returns a function that unregisters `fn`.
 */
export function onCallAbort(ctx: HandlerContext, fn: (reason: unknown) => void): () => void {
  if (ctx instanceof CallContext) {
    let live = true;
    ctx.observe({ aborted: (reason) => live && fn(reason) });
    return () => (live = false);
  }
  const listener = () => fn(ctx.signal.reason);
  ctx.signal.addEventListener("abort", listener, { once: true });
  return () => ctx.signal.removeEventListener("abort", listener);
}

/**
 * Registers a middleware's per-call object with a mesh adapter call: `observer.aborted` runs at
 * the abort (at once if the call already is aborted), `observer.settled` once the middleware chain
 * settles (the handler returned or failed, before the answer is written; innermost first, as
 * `.then`s on `next()` would run). On a mesh adapter call this stands in for a `.then` on `next()`
 * — a promise and, while telemetry runs, an AsyncLocalStorage hook less per call — and returns
 * true; on any other HandlerContext it returns false, registers nothing, and the middleware chains
 * on `next()` itself. `settled` runs when the whole chain has settled, so it suits middleware whose
 * outer neighbours add no asynchronous work after `next()`.
 */
export function observeCall(ctx: HandlerContext, observer: CallObserver): boolean {
  if (!(ctx instanceof CallContext)) return false;
  ctx.observe(observer);
  return true;
}

/**
 * The call's deadline and signal as one object (the call itself, shaped like mesh/deadline's
 * scope), or undefined when `ctx` is not a mesh adapter call: no scope object per call.
 */
export function callDeadlineScope(ctx: HandlerContext): { readonly deadline: number | undefined; readonly signal: AbortSignal } | undefined {
  return ctx instanceof CallContext ? ctx : undefined;
}

/** One request header of the call, without converting all metadata to Headers on a mesh adapter call. */
export function requestHeaderValue(ctx: HandlerContext, name: string): string | undefined {
  return ctx instanceof CallContext ? ctx.header(name) : (ctx.requestHeader.get(name) ?? undefined);
}

/** The request header names of the call (lower case). */
export function requestHeaderKeys(ctx: HandlerContext): string[] {
  return ctx instanceof CallContext ? ctx.headerKeys() : [...ctx.requestHeader.keys()];
}

function asMessage(schema: DescMessage, value: unknown): Message {
  return isMessage(value, schema) ? value : create(schema, value as never);
}

function requestedTimeout(call: { getDeadline(): Date | number }): number | undefined {
  const d = call.getDeadline();
  const t = d instanceof Date ? d.getTime() : d;
  return Number.isFinite(t) ? Math.max(0, t - Date.now()) : undefined;
}

// One shared settled promise for handlers that answered synchronously: nothing to allocate.
const RESOLVED = Promise.resolve();

function isThenable(v: unknown): v is PromiseLike<unknown> {
  return typeof (v as { then?: unknown } | null | undefined)?.then === "function";
}

/** The innermost step of a middleware chain: the handler. */
interface ChainEnd {
  last(): Promise<void>;
}

/** Runs `middleware` around `end.last()`; a middleware that throws instead of rejecting counts as a rejection. */
function compose(middleware: ServerMiddleware[], ctx: HandlerContext, end: ChainEnd): Promise<void> {
  return middleware.length === 0 ? end.last() : new Chain(middleware, ctx, end).dispatch(0);
}

/** One call's walk through the middleware (an object, not per-call closures but each `next`). */
class Chain {
  private index = -1;

  constructor(
    private readonly middleware: ServerMiddleware[],
    private readonly ctx: HandlerContext,
    private readonly end: ChainEnd,
  ) {}

  dispatch(n: number): Promise<void> {
    if (n <= this.index) return Promise.reject(new Error("next() called twice"));
    this.index = n;
    const mw = this.middleware[n];
    if (!mw) return this.end.last();
    try {
      return mw(this.ctx, () => this.dispatch(n + 1));
    } catch (e) {
      return Promise.reject(e);
    }
  }
}

// The response of a handler that returned nothing: the message with every field unset.
const NO_FIELDS = {};

/** What every call of one unary method shares. */
interface UnaryMethod {
  fn: ((req: Message, ctx: HandlerContext) => unknown) | undefined;
  middleware: ServerMiddleware[];
  done: (ctx: CallContext) => void;
  toResponse: (value: unknown) => Message;
  unimplemented: () => ConnectError;
}

/**
 * One unary call. Its answer is sent once: whichever of handler, error or abort (deadline,
 * cancel, shutdown) comes first finishes the call (done → ctx.finished), and what comes later is
 * dropped. Methods instead of per-call closures: less to allocate on every call.
 */
class UnaryCall implements CallAnswerer, ChainEnd {
  private response: unknown;
  /** The handler returned a value (not a promise): {@link last} answered {@link RESOLVED}. */
  private returned = false;

  constructor(
    private readonly m: UnaryMethod,
    private readonly ctx: CallContext,
    private readonly call: ServerUnaryCall<Message, Message>,
    private readonly callback: sendUnaryData<Message>,
  ) {}

  run(): void {
    const ctx = this.ctx;
    // The call is answered at the abort even if the handler runs on.
    ctx.answerer = this;
    if (this.m.middleware.length === 0) {
      // No middleware: no promise of our own; a synchronous handler answers in this turn.
      let result: unknown;
      try {
        result = this.invoke();
      } catch (e) {
        // A call aborted on arrival (deadline already passed) answers with the abort reason.
        this.fail(ctx.reason ?? e);
        return;
      }
      if (ctx.reason) this.fail(ctx.reason);
      if (isThenable(result)) {
        result.then(
          (v) => this.reply(v),
          (e: unknown) => this.fail(e),
        );
      } else {
        this.reply(result);
      }
      return;
    }
    const work = compose(this.m.middleware, ctx, this);
    if (ctx.reason) this.fail(ctx.reason);
    if (work === RESOLVED && this.returned) {
      // Every middleware handed the handler's settled result straight back (none chained work of
      // its own after `next()`), so the chain has settled: answer in this turn, without a
      // promise, two closures and a microtask per call.
      ctx.settle(false, undefined);
      this.reply(this.response);
      return;
    }
    // After an early answer the handler's own failure is dropped here, instead of becoming an
    // unhandled rejection (which ends a Node 20 process).
    work.then(
      () => {
        ctx.settle(false, undefined);
        this.reply(this.response);
      },
      (e: unknown) => {
        ctx.settle(true, e);
        this.fail(e);
      },
    );
  }

  aborted(reason: ConnectError): void {
    this.fail(reason);
  }

  private invoke(): unknown {
    if (!this.m.fn) throw this.m.unimplemented();
    return this.m.fn(this.call.request, this.ctx);
  }

  /** The innermost `next` of the middleware chain: runs the handler and keeps its response. */
  last(): Promise<void> {
    try {
      const result = this.invoke();
      if (isThenable(result)) return Promise.resolve(result).then((v) => void (this.response = v));
      this.response = result;
      this.returned = true;
      return RESOLVED;
    } catch (e) {
      return Promise.reject(e);
    }
  }

  private fail(err: unknown): void {
    if (this.ctx.finished) return;
    this.callback(toGrpcStatus(err) as never);
    this.m.done(this.ctx);
  }

  private reply(value: unknown): void {
    const ctx = this.ctx;
    if (ctx.finished) return;
    let response: Message;
    try {
      response = this.m.toResponse(value);
    } catch (e) {
      this.fail(e);
      return;
    }
    const header = ctx.headerMetadata();
    if (header) this.call.sendMetadata(header);
    this.callback(null, response, ctx.trailerMetadata());
    this.m.done(ctx);
  }
}

/**
 * grpc-js handlers for a protobuf-es service implemented as a Connect `ServiceImpl`: handlers get
 * generated message types and a `HandlerContext` (headers, deadline signal, values) and throw
 * `ConnectError`s, exactly as under a Connect router. Methods missing from `impl` answer
 * Unimplemented.
 */
export function grpcImplementation<S extends DescService>(
  service: S,
  impl: Partial<ServiceImpl<S>>,
  opts: AdapterOptions = {},
): UntypedServiceImplementation {
  const middleware = opts.middleware ?? [];
  const active = new Set<CallContext>();
  const streams = new Set<CallContext>();
  opts.shutdownSignal?.addEventListener("abort", () => {
    for (const ctx of active) ctx.abort(SERVER_SHUTDOWN());
  });
  opts.drainSignal?.addEventListener("abort", () => {
    for (const ctx of streams) ctx.abort(SERVER_DRAINING());
  });
  const out: UntypedServiceImplementation = {};
  const def = grpcServiceDefinition(service);
  for (const method of service.methods) {
    const fn = (impl as Record<string, unknown>)[method.localName] as ((req: Message, ctx: HandlerContext) => unknown) | undefined;
    const url = methodPath(method);
    const isStream = method.methodKind === "server_streaming";
    const makeContext = (call: ServerUnaryCall<Message, Message> | ServerWritableStream<Message, Message>) => {
      const requested = requestedTimeout(call);
      const timeout = opts.timeoutFor ? opts.timeoutFor(method, requested) : requested;
      const ctx = new CallContext(service, method, url, call.metadata, timeout === undefined ? undefined : Date.now() + timeout, opts.contextValues);
      // `on`, not `once`: grpc-js emits it at most once per call, and once's wrapper costs per call.
      call.on("cancelled", () => ctx.abort(CANCELLED_BY_CLIENT()));
      active.add(ctx);
      if (opts.shutdownSignal?.aborted) ctx.abort(SERVER_SHUTDOWN());
      if (isStream) {
        streams.add(ctx);
        if (opts.drainSignal?.aborted) ctx.abort(SERVER_DRAINING());
      }
      return ctx;
    };
    const done = (ctx: CallContext) => {
      ctx.finish();
      active.delete(ctx);
      if (isStream) streams.delete(ctx);
    };
    let handler: UntypedHandleCall;
    if (method.methodKind === "unary") {
      const m: UnaryMethod = {
        fn,
        middleware,
        done,
        // A type the compiled codec writes takes the handler's plain object as it is: create() would
        // only copy it into a message first.
        toResponse: isFastMessage(method.output) ? (v) => (v ?? NO_FIELDS) as Message : (v) => asMessage(method.output, v),
        unimplemented: () => new ConnectError(`method ${url} is not implemented`, Code.Unimplemented),
      };
      handler = (call: ServerUnaryCall<Message, Message>, callback: sendUnaryData<Message>) => new UnaryCall(m, makeContext(call), call, callback).run();
    } else if (isStream) {
      handler = (call: ServerWritableStream<Message, Message>) => {
        const ctx = makeContext(call);
        let headerSent = false;
        const sendHeader = () => {
          if (headerSent) return;
          headerSent = true;
          const header = ctx.headerMetadata();
          if (header) call.sendMetadata(header);
        };
        const run = async () => {
          if (!fn) throw new ConnectError(`method ${url} is not implemented`, Code.Unimplemented);
          const iterable = fn(call.request, ctx) as AsyncIterable<unknown>;
          for await (const item of iterable) {
            if (ctx.reason) break;
            sendHeader();
            // Respect HTTP/2 flow control: wait for the peer to read before producing more.
            if (!call.write(asMessage(method.output, item))) {
              await new Promise<void>((resolve) => {
                call.once("drain", resolve);
                ctx.observe({ aborted: () => resolve() });
              });
            }
          }
        };
        const fail = (err: unknown) => {
          if (ctx.finished) return;
          if (!call.cancelled) call.emit("error", toGrpcStatus(err));
          done(ctx);
        };
        // Streams are few and long: closures are fine here.
        ctx.answerer = { aborted: fail };
        const work = compose(middleware, ctx, { last: run });
        if (ctx.reason) fail(ctx.reason);
        work.then(
          () => {
            ctx.settle(false, undefined);
            if (ctx.finished) return;
            sendHeader();
            call.end(ctx.trailerMetadata());
            done(ctx);
          },
          (e: unknown) => {
            ctx.settle(true, e);
            fail(e);
          },
        );
      };
    } else {
      // The shop's contracts use unary and server streaming only; refuse the rest clearly.
      handler = ((call: { emit(e: string, v: unknown): void }) =>
        call.emit("error", toGrpcStatus(new ConnectError(`${method.methodKind} is not supported by meshwork`, Code.Unimplemented)))) as never;
    }
    out[def[method.name] ? method.name : method.localName] = handler;
  }
  return out;
}

function hasAny(h: Headers): boolean {
  for (const _ of h.keys()) return true;
  return false;
}
