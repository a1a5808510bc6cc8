import { create, isMessage, type DescMessage, type DescMethod, type DescService, type Message } from "@bufbuild/protobuf";
import { Code, ConnectError, createHandlerContext, type ContextValues, type HandlerContext, type ServiceImpl } from "@connectrpc/connect";
import type {
  sendUnaryData,
  ServerUnaryCall,
  ServerWritableStream,
  UntypedHandleCall,
  UntypedServiceImplementation,
} from "@grpc/grpc-js";
import { once } from "node:events";
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
  /** Per-call context values (e.g. the verified caller identity is put here by middleware). */
  contextValues?: () => ContextValues;
  /**
   * The deadline a call gets, from the one the client asked for (undefined = none). The resilience
   * layer caps it and applies the method default here.
   */
  timeoutFor?: (method: DescMethod, requestedMs: number | undefined) => number | undefined;
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
 * Settles with `work`, or rejects with the signal's reason as soon as it aborts: the call is
 * answered at the deadline even if the handler ignores its signal. The listener is removed when
 * `work` settles, so a completed call allocates no error.
 */
function raceSignal(work: Promise<void>, signal: AbortSignal): Promise<void> {
  if (signal.aborted) {
    // Answered already (e.g. the deadline had passed on arrival): the handler's own failure must
    // not become an unhandled rejection, which ends a Node 20 process.
    work.catch(() => undefined);
    return Promise.reject(reasonOf(signal));
  }
  return new Promise((resolve, reject) => {
    const fail = () => reject(reasonOf(signal));
    signal.addEventListener("abort", fail, { once: true });
    work.then(
      () => {
        signal.removeEventListener("abort", fail);
        resolve();
      },
      (err: unknown) => {
        signal.removeEventListener("abort", fail);
        reject(err);
      },
    );
  });
}

function reasonOf(signal: AbortSignal): ConnectError {
  return signal.reason instanceof ConnectError ? signal.reason : new ConnectError("call cancelled", Code.Canceled);
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
  const out: UntypedServiceImplementation = {};
  const def = grpcServiceDefinition(service);
  for (const method of service.methods) {
    const fn = (impl as Record<string, unknown>)[method.localName] as ((req: Message, ctx: HandlerContext) => unknown) | undefined;
    const url = methodPath(method);
    const makeContext = (call: ServerUnaryCall<Message, Message> | ServerWritableStream<Message, Message>) => {
      const requested = requestedTimeout(call);
      const ctx = createHandlerContext({
        service,
        method,
        protocolName: "grpc",
        requestMethod: "POST",
        url,
        timeoutMs: opts.timeoutFor ? opts.timeoutFor(method, requested) : requested,
        shutdownSignal: opts.shutdownSignal,
        requestHeader: metadataToHeaders(call.metadata),
        contextValues: opts.contextValues?.(),
      });
      call.once("cancelled", () => ctx.abort(new ConnectError("cancelled by the client", Code.Canceled)));
      return ctx;
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
        raceSignal(compose(middleware, ctx, run), ctx.signal).then(
          () => {
            if (hasAny(ctx.responseHeader)) call.sendMetadata(headersToMetadata(ctx.responseHeader));
            callback(null, response, hasAny(ctx.responseTrailer) ? headersToMetadata(ctx.responseTrailer) : undefined);
            ctx.abort();
          },
          (err: unknown) => {
            callback(toGrpcStatus(err) as never);
            ctx.abort();
          },
        );
      };
    } else if (method.methodKind === "server_streaming") {
      handler = (call: ServerWritableStream<Message, Message>) => {
        const ctx = makeContext(call);
        let headerSent = false;
        const sendHeader = () => {
          if (headerSent) return;
          headerSent = true;
          if (hasAny(ctx.responseHeader)) call.sendMetadata(headersToMetadata(ctx.responseHeader));
        };
        const run = async () => {
          if (!fn) throw new ConnectError(`method ${url} is not implemented`, Code.Unimplemented);
          const iterable = fn(call.request, ctx) as AsyncIterable<unknown>;
          for await (const item of iterable) {
            if (ctx.signal.aborted) break;
            sendHeader();
            // Respect HTTP/2 flow control: wait for the peer to read before producing more.
            if (!call.write(asMessage(method.output, item))) await raceSignal(once(call, "drain").then(() => undefined), ctx.signal);
          }
        };
        raceSignal(compose(middleware, ctx, run), ctx.signal).then(
          () => {
            sendHeader();
            call.end(hasAny(ctx.responseTrailer) ? headersToMetadata(ctx.responseTrailer) : undefined);
            ctx.abort();
          },
          (err: unknown) => {
            if (!call.cancelled) call.emit("error", toGrpcStatus(err));
            ctx.abort();
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
