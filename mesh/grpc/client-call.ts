import type { DescMethod, Message } from "@bufbuild/protobuf";
import { Code, ConnectError } from "@connectrpc/connect";
import { setMaxListeners } from "node:events";
import { Client, Metadata, status as Status, type ClientReadableStream, type StatusObject } from "@grpc/grpc-js";
import { grpcServiceDefinition } from "./definition.js";
import { fromGrpcError } from "./errors.js";
import { headersToMetadata, metadataToHeaders } from "./metadata.js";

/**
 * Stands in for "no signal" without allocating a controller per call; nothing ever aborts it, so
 * calls skip listening to it.
 */
export const NEVER_ABORTED: AbortSignal = new AbortController().signal;
setMaxListeners(0, NEVER_ABORTED);

/** Per-attempt options of a call on one grpc-js channel. */
export interface CallOptions {
  /** Absolute deadline (epoch ms). */
  deadline?: number;
  header?: Headers;
  signal?: AbortSignal;
}

/** A failed attempt: the error plus what the retry logic needs to know about how far it got. */
export class AttemptError extends Error {
  constructor(
    readonly error: ConnectError,
    /** True once response headers arrived: the server application saw the call (gRFC A6: no retry). */
    readonly headersReceived: boolean,
  ) {
    super(error.message);
  }
}

/** A unary response with its header and trailer. */
export interface UnaryResult<O extends Message = Message> {
  message: O;
  header: Headers;
  trailer: Headers;
}

function methodDef(method: DescMethod) {
  return grpcServiceDefinition(method.parent)[method.name];
}

// Shared: a message context with nothing to report back (grpc-js only reads it).
const NO_CONTEXT = Object.freeze({});

/**
 * One unary attempt on `client`'s channel; rejects with {@link AttemptError}. Talks to the channel's
 * call directly (start, send, half-close, read) instead of `Client.makeUnaryRequest`: that wrapper
 * adds an EventEmitter, the interceptor machinery and a captured stack per call, none of which a
 * mesh call uses (the channels have no grpc-js interceptors; errors carry their own stack).
 */
export function unaryCall<O extends Message>(client: Client, method: DescMethod, input: Message, opts: CallOptions = {}): Promise<UnaryResult<O>> {
  const def = methodDef(method);
  const md = opts.header ? headersToMetadata(opts.header) : new Metadata();
  return new Promise((resolve, reject) => {
    let payload: Buffer;
    try {
      payload = def.requestSerialize(input);
    } catch (e) {
      reject(new AttemptError(new ConnectError(`request message serialization failed: ${e instanceof Error ? e.message : String(e)}`, Code.Internal), false));
      return;
    }
    let header: Metadata | undefined;
    let value: O | undefined;
    let readError: string | undefined;
    const call = client.getChannel().createCall(def.path, opts.deadline ?? Infinity, undefined, null, undefined);
    const abort = () => call.cancelWithStatus(Status.CANCELLED, "Cancelled on client");
    const signal = opts.signal === NEVER_ABORTED ? undefined : opts.signal;
    call.start(md, {
      onReceiveMetadata(m: Metadata) {
        header = m;
      },
      onReceiveMessage(buf: Buffer) {
        if (value !== undefined) {
          call.cancelWithStatus(Status.UNIMPLEMENTED, "Too many responses received");
          return;
        }
        try {
          value = def.responseDeserialize(buf) as O;
        } catch (e) {
          readError = `Response message parsing error: ${e instanceof Error ? e.message : String(e)}`;
          call.cancelWithStatus(Status.INTERNAL, readError);
        }
      },
      onReceiveStatus(status: StatusObject) {
        signal?.removeEventListener("abort", abort);
        const headersReceived = header !== undefined;
        if (readError !== undefined) {
          reject(new AttemptError(new ConnectError(readError, Code.Internal), headersReceived));
        } else if (status.code !== Status.OK) {
          reject(new AttemptError(fromGrpcError(status), headersReceived));
        } else if (value === undefined) {
          reject(new AttemptError(new ConnectError("no response message received", Code.Unimplemented, metadataToHeaders(status.metadata)), headersReceived));
        } else {
          resolve(lazyResult(value, header, status.metadata));
        }
      },
    });
    call.startRead();
    call.sendMessageWithContext(NO_CONTEXT, payload);
    call.halfClose();
    if (signal) {
      if (signal.aborted) abort();
      else signal.addEventListener("abort", abort, { once: true });
    }
  });
}

/** Converts header and trailer metadata to Headers only if someone reads them (most callers don't). */
function lazyResult<O extends Message>(message: O, header: Metadata | undefined, trailer: Metadata | undefined): UnaryResult<O> {
  let h: Headers | undefined;
  let t: Headers | undefined;
  return {
    message,
    get header() {
      return (h ??= metadataToHeaders(header));
    },
    get trailer() {
      return (t ??= metadataToHeaders(trailer));
    },
  };
}

/** A server-streaming call: `header` rejects with {@link AttemptError}; the messages throw ConnectError. */
export interface StreamResult<O extends Message = Message> {
  messages: AsyncIterable<O>;
  /** Resolves with the response header (or rejects when the call fails before sending one). */
  header: Promise<Headers>;
  /** Resolves with the trailer when the stream ends. */
  trailer: Promise<Headers>;
  cancel(): void;
}

/** Starts a server-streaming call on `client`'s channel. */
export function serverStreamCall<O extends Message>(client: Client, method: DescMethod, input: Message, opts: CallOptions = {}): StreamResult<O> {
  const def = methodDef(method);
  const md = opts.header ? headersToMetadata(opts.header) : new Metadata();
  const stream: ClientReadableStream<O> = client.makeServerStreamRequest(def.path, def.requestSerialize, def.responseDeserialize as never, input, md, {
    deadline: opts.deadline,
  });
  let headersReceived = false;
  const header = new Promise<Headers>((resolve, reject) => {
    stream.once("metadata", (m: Metadata) => {
      headersReceived = true;
      resolve(metadataToHeaders(m));
    });
    stream.once("error", (e) => reject(new AttemptError(fromGrpcError(e), headersReceived)));
  });
  header.catch(() => undefined);
  const abort = () => stream.cancel();
  const signal = opts.signal === NEVER_ABORTED ? undefined : opts.signal;
  // The listener goes at the status too, not only when `messages` is iterated: a stream that fails
  // before its header (and is retried) or is dropped uniterated would otherwise stay on the signal.
  const trailer = new Promise<Headers>((resolve) =>
    stream.once("status", (s) => {
      signal?.removeEventListener("abort", abort);
      resolve(metadataToHeaders(s.metadata));
    }),
  );
  if (signal) {
    if (signal.aborted) stream.cancel();
    else signal.addEventListener("abort", abort, { once: true });
  }
  async function* messages(): AsyncIterable<O> {
    try {
      for await (const m of stream) yield m as O;
    } catch (e) {
      // Iterated by the caller once the stream is established: past retrying, so the plain error.
      throw fromGrpcError(e);
    } finally {
      signal?.removeEventListener("abort", abort);
      stream.cancel();
    }
  }
  return { messages: messages(), header, trailer, cancel: () => stream.cancel() };
}
