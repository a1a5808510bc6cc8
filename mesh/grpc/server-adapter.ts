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
import { headersToMetadata, metadataToHeaders } from "./metadata.js";

/**
 * Wraps every call a server handles. `next` runs the handler to completion (for a server stream:
 * until the last message is written) and rejects with the handler's error. Middleware sees the
 * same HandlerContext as the handler, so it can read headers, the deadline and the signal.
 */
export type ServerMiddleware = (ctx: HandlerContext, next: () => Promise<void>) => Promise<void>;

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
// bundled undici (~2 MiB of heap in every idle service).
function sharedReason(message: string, code: Code): () => ConnectError {
  let e: ConnectError | undefined;
  return () => (e ??= new ConnectError(message, code));
}
const COMPLETED = sharedReason("call completed", Code.Canceled);
const CANCELLED_BY_CLIENT = sharedReason("cancelled by the client", Code.Canceled);
const SERVER_SHUTDOWN = sharedReason("server shutting down", Code.Unavailable);
const SERVER_DRAINING = sharedReason("server draining: re-subscribe on another replica", Code.Unavailable);

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
  private listeners: Array<() => void> = [];
  private timer: NodeJS.Timeout | undefined;
  private reqHeader: Headers | undefined;
  private resHeader: Headers | undefined;
  private resTrailer: Headers | undefined;
  private vals: ContextValues | undefined;

  constructor(
    readonly service: DescService,
    readonly method: DescMethod,
    readonly url: string,
    private readonly metadata: Metadata,
    private readonly deadline: number | undefined,
    private readonly valuesFactory: (() => ContextValues) | undefined,
  ) {
    if (deadline !== undefined) {
      const ms = deadline - Date.now();
      if (ms <= 0) this.abort(new ConnectError("the operation timed out", Code.DeadlineExceeded));
      else this.timer = setTimeout(() => this.abort(new ConnectError("the operation timed out", Code.DeadlineExceeded)), ms);
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

  /** Calls `fn` once the call is aborted (at once if it already is); never after it finished. */
  onAbort(fn: () => void): void {
    if (this.reason) fn();
    else if (!this.finished) this.listeners.push(fn);
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
    clearTimeout(this.timer);
    this.controller?.abort(reason);
    for (const fn of this.listeners.splice(0)) fn();
  }

  /** The call has been answered: stop timers and tell anyone holding the signal. */
  finish(): void {
    if (this.finished) return;
    this.finished = true;
    clearTimeout(this.timer);
    this.listeners.length = 0;
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
    ctx.onAbort(() => live && fn(ctx.reason));
    return () => (live = false);
  }
  const listener = () => fn(ctx.signal.reason);
  ctx.signal.addEventListener("abort", listener, { once: true });
  return () => ctx.signal.removeEventListener("abort", listener);
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

function compose(middleware: ServerMiddleware[], ctx: HandlerContext, last: () => Promise<void>): Promise<void> {
  if (middleware.length === 0) return last();
  let i = -1;
  const dispatch = (n: number): Promise<void> => {
    if (n <= i) return Promise.reject(new Error("next() called twice"));
    i = n;
    const mw = middleware[n];
    return mw ? mw(ctx, () => dispatch(n + 1)) : last();
  };
  return dispatch(0);
}

/**
 * Settles with `work`, or rejects with the call's abort reason as soon as it is aborted: the call
 * is answered at the deadline even if the handler ignores its signal.
 */
function settle(ctx: CallContext, work: Promise<void>): Promise<void> {
  return new Promise((resolve, reject) => {
    if (ctx.reason) {
      // Answered already (e.g. the deadline had passed on arrival): the handler's own failure must
      // not become an unhandled rejection, which ends a Node 20 process.
      work.catch(() => undefined);
      reject(ctx.reason);
      return;
    }
    ctx.onAbort(() => reject(ctx.reason));
    work.then(resolve, reject);
  });
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
      handler = (call: ServerUnaryCall<Message, Message>, callback: sendUnaryData<Message>) => {
        const ctx = makeContext(call);
        let response: Message | undefined;
        const run = async () => {
          if (!fn) throw new ConnectError(`method ${url} is not implemented`, Code.Unimplemented);
          response = asMessage(method.output, await fn(call.request, ctx));
        };
        settle(ctx, compose(middleware, ctx, run)).then(
          () => {
            const header = ctx.headerMetadata();
            if (header) call.sendMetadata(header);
            callback(null, response, ctx.trailerMetadata());
            done(ctx);
          },
          (err: unknown) => {
            callback(toGrpcStatus(err) as never);
            done(ctx);
          },
        );
      };
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
                ctx.onAbort(resolve);
              });
            }
          }
        };
        settle(ctx, compose(middleware, ctx, run)).then(
          () => {
            sendHeader();
            call.end(ctx.trailerMetadata());
            done(ctx);
          },
          (err: unknown) => {
            if (!call.cancelled) call.emit("error", toGrpcStatus(err));
            done(ctx);
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
