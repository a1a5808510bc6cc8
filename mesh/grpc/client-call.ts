import type { DescMethod, Message } from "@bufbuild/protobuf";
import { Code, ConnectError } from "@connectrpc/connect";
import { setMaxListeners } from "node:events";
import { Client, Metadata, status as Status, type Channel, type ClientReadableStream, type MethodDefinition, type StatusObject } from "@grpc/grpc-js";
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
  /** Sent instead of `header` when set (grpc-js copies it, so one object may serve several calls). */
  metadata?: Metadata;
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

/** The channel-level call grpc-js gives for a method path. */
type Call = ReturnType<Channel["createCall"]>;

const methodDefs = new WeakMap<DescMethod, MethodDefinition<Message, Message>>();

function methodDef(method: DescMethod): MethodDefinition<Message, Message> {
  let def = methodDefs.get(method);
  if (!def) {
    def = grpcServiceDefinition(method.parent)[method.name] as MethodDefinition<Message, Message>;
    methodDefs.set(method, def);
  }
  return def;
}

// Shared: a message context with nothing to report back (grpc-js only reads it).
const NO_CONTEXT = Object.freeze({});

/** Receives the end of one attempt started with {@link startUnaryCall}: exactly one of the two, once. */
export interface UnaryCallListener {
  /** The call ended OK with one message; header and trailer as grpc-js metadata (convert them only if read). */
  onUnaryResult(message: Message, header: Metadata | undefined, trailer: Metadata): void;
  onUnaryError(error: AttemptError): void;
}

/**
 * One unary attempt's state and the grpc-js call listener in one object, which is also the abort
 * listener (`handleEvent`): no closures per attempt.
 */
class UnaryAttempt {
  private header: Metadata | undefined = undefined;
  private value: Message | undefined = undefined;
  private readError: string | undefined = undefined;
  /** The listener has had its answer: a status after that (of a call that failed to start) is dropped. */
  ended = false;

  constructor(
    private readonly call: Call,
    private readonly def: MethodDefinition<Message, Message>,
    private readonly signal: AbortSignal | undefined,
    private readonly listener: UnaryCallListener,
  ) {}

  onReceiveMetadata(m: Metadata): void {
    this.header = m;
  }

  onReceiveMessage(buf: Buffer): void {
    if (this.value !== undefined) {
      this.call.cancelWithStatus(Status.UNIMPLEMENTED, "Too many responses received");
      return;
    }
    try {
      this.value = this.def.responseDeserialize(buf);
    } catch (e) {
      this.readError = `Response message parsing error: ${e instanceof Error ? e.message : String(e)}`;
      this.call.cancelWithStatus(Status.INTERNAL, this.readError);
    }
  }

  onReceiveStatus(status: StatusObject): void {
    this.signal?.removeEventListener("abort", this);
    if (this.ended) return;
    this.ended = true;
    const headersReceived = this.header !== undefined;
    if (this.readError !== undefined) {
      this.listener.onUnaryError(new AttemptError(new ConnectError(this.readError, Code.Internal), headersReceived));
    } else if (status.code !== Status.OK) {
      this.listener.onUnaryError(new AttemptError(fromGrpcError(status), headersReceived));
    } else if (this.value === undefined) {
      this.listener.onUnaryError(new AttemptError(new ConnectError("no response message received", Code.Unimplemented, metadataToHeaders(status.metadata)), headersReceived));
    } else {
      this.listener.onUnaryResult(this.value, this.header, status.metadata);
    }
  }

  /** The caller's signal aborted. */
  handleEvent(): void {
    this.call.cancelWithStatus(Status.CANCELLED, "Cancelled on client");
  }
}

/**
 * Starts one unary attempt on `client`'s channel and reports its end to `listener`, never
 * synchronously (a request that cannot be serialised or a closed channel fails on the next tick).
 * Talks to the channel's call directly (start, send, half-close, read) instead of
 * `Client.makeUnaryRequest`: that wrapper adds an EventEmitter, the interceptor machinery and a
 * captured stack per call, none of which a mesh call uses (the channels have no grpc-js
 * interceptors; errors carry their own stack). grpc-js copies `metadata` when the call starts, so
 * the caller may reuse it for another attempt.
 */
export function startUnaryCall(
  client: Client,
  method: DescMethod,
  input: Message,
  deadline: number | undefined,
  metadata: Metadata,
  signal: AbortSignal | undefined,
  listener: UnaryCallListener,
): void {
  let call: Call;
  let payload: Buffer;
  const def = methodDef(method);
  try {
    payload = def.requestSerialize(input);
  } catch (e) {
    const error = new AttemptError(new ConnectError(`request message serialization failed: ${e instanceof Error ? e.message : String(e)}`, Code.Internal), false);
    process.nextTick(() => listener.onUnaryError(error));
    return;
  }
  try {
    call = client.getChannel().createCall(def.path, deadline ?? Infinity, undefined, null, undefined);
  } catch (e) {
    // A closed channel: nothing was sent.
    const error = new AttemptError(ConnectError.from(e), false);
    process.nextTick(() => listener.onUnaryError(error));
    return;
  }
  const s = signal === NEVER_ABORTED ? undefined : signal;
  const attempt = new UnaryAttempt(call, def, s, listener);
  try {
    call.start(metadata, attempt);
    call.startRead();
    call.sendMessageWithContext(NO_CONTEXT, payload);
    call.halfClose();
  } catch (e) {
    // This error is the answer: a status the half-started call gives later is dropped.
    attempt.ended = true;
    call.cancelWithStatus(Status.CANCELLED, "Cancelled on client");
    const error = new AttemptError(ConnectError.from(e), false);
    process.nextTick(() => listener.onUnaryError(error));
    return;
  }
  if (s) {
    if (s.aborted) attempt.handleEvent();
    else s.addEventListener("abort", attempt, { once: true });
  }
}

/** One unary attempt on `client`'s channel as a promise; rejects with {@link AttemptError}. See {@link startUnaryCall}. */
export function unaryCall<O extends Message>(client: Client, method: DescMethod, input: Message, opts: CallOptions = {}): Promise<UnaryResult<O>> {
  return new Promise((resolve, reject) => {
    const md = opts.metadata ?? (opts.header ? headersToMetadata(opts.header) : new Metadata());
    startUnaryCall(client, method, input, opts.deadline, md, opts.signal, {
      onUnaryResult: (message, header, trailer) => resolve(new LazyUnaryResult(message as O, header, trailer)),
      onUnaryError: reject,
    });
  });
}

/** A unary result whose header and trailer metadata become Headers only if read (most callers don't). */
export class LazyUnaryResult<O extends Message = Message> implements UnaryResult<O> {
  private h: Headers | undefined = undefined;
  private t: Headers | undefined = undefined;

  constructor(
    readonly message: O,
    private readonly headerMetadata: Metadata | undefined,
    private readonly trailerMetadata: Metadata | undefined,
  ) {}

  get header(): Headers {
    return (this.h ??= metadataToHeaders(this.headerMetadata));
  }

  get trailer(): Headers {
    return (this.t ??= metadataToHeaders(this.trailerMetadata));
  }
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
  const md = opts.metadata ?? (opts.header ? headersToMetadata(opts.header) : new Metadata());
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
