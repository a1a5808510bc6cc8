import { create, isMessage, type DescMessage, type DescMethod, type DescMethodStreaming, type DescMethodUnary, type Message, type MessageInitShape } from "@bufbuild/protobuf";
import {
  Code,
  ConnectError,
  createContextKey,
  createContextValues,
  type ContextValues,
  type Interceptor,
  type StreamRequest,
  type StreamResponse,
  type Transport,
  type UnaryRequest,
  type UnaryResponse,
} from "@connectrpc/connect";
import { Balancer, type BalancerOptions, type Outcome } from "../balancer/index.js";
import { AttemptError, methodPath, NEVER_ABORTED, serverStreamCall, unaryCall } from "../grpc/index.js";
import { ChannelPool } from "./channel-pool.js";
import type { EndpointSource } from "./endpoints.js";

/** What a call policy sees after a failed attempt. */
export interface AttemptInfo {
  method: DescMethod;
  request: Message;
  header: Headers;
  /** 1 for the first attempt. */
  attempt: number;
  error: AttemptError;
  /** Absolute deadline of the whole call (epoch ms), if any. */
  deadline: number | undefined;
  /**
   * The attempt failed DeadlineExceeded at its own per-try deadline (from
   * {@link CallPolicy.attemptDeadline}), earlier than the call's: the call has time left.
   */
  perTryTimeout?: boolean;
}

/**
 * Resilience hooks of a transport (the policy layer implements them). All optional: without a
 * policy a call makes exactly one attempt and uses the caller's timeout.
 */
export interface CallPolicy {
  /** Timeout for a call from the caller's request (deadline propagation and method defaults). */
  timeoutMs?(method: DescMethod, requested: number | undefined): number | undefined;
  /** The signal the call runs with, from the caller's (e.g. also aborted when the inbound call is cancelled). */
  signal?(method: DescMethod, signal: AbortSignal): AbortSignal;
  /** Runs before each logical call; may throw (e.g. an open circuit breaker) or return a completion callback. */
  begin?(method: DescMethod): ((ok: boolean, code?: Code) => void) | void;
  /** After a failed attempt: ms to wait before retrying, or undefined to give up. */
  retryDelay?(info: AttemptInfo): number | undefined;
  /**
   * Deadline (epoch ms) of attempt number `attempt` (1 for the first), at most the call's: a
   * per-try timeout. Asked only when the service has more than one endpoint to move on to.
   */
  attemptDeadline?(method: DescMethod, request: Message, callDeadline: number | undefined, attempt: number): number | undefined;
  /** Called when an attempt ends, with the endpoint it went to. */
  onAttempt?(method: DescMethod, endpoint: string, outcome: Outcome, code: Code | undefined, attempt: number): void;
}

/** Options for {@link createMeshTransport}. */
export interface MeshTransportOptions {
  /** Where the service's replicas are. */
  endpoints: EndpointSource;
  /** Logical service name, for error messages. */
  serviceName?: string;
  balancer?: BalancerOptions;
  /** Share channels between transports; a private pool when absent. */
  channels?: ChannelPool;
  policy?: CallPolicy;
  /** Connect interceptors around each logical call (telemetry etc.). */
  interceptors?: Interceptor[];
  /** How long a call waits for discovery's first answer before failing Unavailable. */
  readyTimeoutMs?: number;
}

/** A Connect `Transport` that carries calls over grpc-js channels to balanced endpoints. */
export interface MeshTransport extends Transport {
  readonly balancer: Balancer;
  close(): void;
}

/**
 * Endpoints a logical call has used. Calls that share one set (a hedged call and its hedge) avoid
 * each other's endpoints; each call gets its own set when absent.
 */
export const TRIED_ENDPOINTS = createContextKey<Set<string> | undefined>(undefined, { description: "meshwork endpoints tried by the call" });

/** The logical call whose hooks are running, see {@link hookCallValues}. */
let hookValues: ContextValues | undefined;

/**
 * The context values of the logical call whose policy or balancer hook is running right now, so a
 * hook can tell which call it serves (telemetry puts events on that call's span) without an
 * AsyncLocalStorage scope per call: the transport sets it around each synchronous hook call.
 * Undefined anywhere else.
 */
export function hookCallValues(): ContextValues | undefined {
  return hookValues;
}

/** Carries the caller's timeout through interceptors (they may copy the request object). */
const TIMEOUT_KEY = createContextKey<number | undefined>(undefined, { description: "meshwork call timeout" });

/** Codes that say the endpoint (not the request) is unhealthy; they feed outlier ejection. */
const ENDPOINT_FAILURE = new Set<Code>([Code.Unavailable, Code.Internal, Code.Unknown, Code.DataLoss]);

/**
 * How much earlier than the per-try deadline a DeadlineExceeded still counts as caused by it: the
 * server got the per-try deadline as its grpc-timeout, and fails its own outgoing calls up to its
 * 5 ms margin (mesh/policy DEADLINE_MARGIN_MS) before it; plus timer and clock granularity.
 * Earlier than that, the DeadlineExceeded is the server's own answer, not the per-try timeout.
 */
const PER_TRY_SLACK_MS = 10;

/**
 * Classifies an attempt's result for the balancer. `perTryTimeout`: the attempt ran out of its
 * per-try timeout — the endpoint did not answer in the time the call could give it, a failure
 * (a frozen replica is ejected like a failing one).
 */
export function outcomeOf(code: Code | undefined, perTryTimeout = false): Outcome {
  if (code === undefined) return "success";
  if (ENDPOINT_FAILURE.has(code) || perTryTimeout) return "failure";
  // The caller gave up, or the server shed load on purpose: says nothing about endpoint health.
  if (code === Code.Canceled || code === Code.ResourceExhausted || code === Code.DeadlineExceeded) return "neutral";
  // Application answers (NotFound, InvalidArgument, ...) come from a healthy endpoint.
  return "success";
}

function waitMs(ms: number, signal: AbortSignal | undefined): Promise<void> {
  return new Promise((resolve, reject) => {
    const t = setTimeout(() => {
      signal?.removeEventListener("abort", onAbort);
      resolve();
    }, ms);
    const onAbort = () => {
      clearTimeout(t);
      reject(new ConnectError("call cancelled", Code.Canceled));
    };
    signal?.addEventListener("abort", onAbort, { once: true });
  });
}

/**
 * Creates the transport every Meshwork client uses: endpoints from discovery (or fixed),
 * power-of-two-choices balancing with outlier ejection, one reused grpc-js channel per endpoint,
 * and the policy hooks for retries, breakers and deadlines. Use it with Connect's `createClient`.
 */
export function createMeshTransport(opts: MeshTransportOptions): MeshTransport {
  const balancer = new Balancer(opts.balancer);
  const ownPool = !opts.channels;
  const pool = opts.channels ?? new ChannelPool();
  const policy = opts.policy ?? {};
  const serviceName = opts.serviceName ?? "service";
  // 5 s: discovery's first read from a healthy etcd takes milliseconds; longer means etcd is down.
  const readyTimeoutMs = opts.readyTimeoutMs ?? 5_000;
  let isReady = false;
  const apply = (list: readonly string[]) => {
    balancer.setEndpoints(list);
    if (ownPool) pool.retain(new Set(list));
  };
  apply(opts.endpoints.current());
  const unsubscribe = opts.endpoints.subscribe(apply);

  async function ensureReady(signal: AbortSignal | undefined): Promise<void> {
    if (isReady) return;
    let timer: NodeJS.Timeout | undefined;
    let onAbort: (() => void) | undefined;
    try {
      await Promise.race([
        opts.endpoints.ready(),
        new Promise<never>((_, reject) => {
          timer = setTimeout(() => reject(new ConnectError(`discovery of ${serviceName} gave no answer within ${readyTimeoutMs} ms`, Code.Unavailable)), readyTimeoutMs);
          onAbort = () => reject(new ConnectError("call cancelled", Code.Canceled));
          signal?.addEventListener("abort", onAbort, { once: true });
        }),
      ]);
    } finally {
      clearTimeout(timer);
      // The caller's signal may outlive this call (an inbound call's signal): leave nothing on it.
      if (onAbort) signal?.removeEventListener("abort", onAbort);
    }
    isReady = true;
    apply(opts.endpoints.current());
  }

  function callDeadline(method: DescMethod, timeoutMs: number | undefined): number | undefined {
    const t = policy.timeoutMs ? policy.timeoutMs(method, timeoutMs) : timeoutMs;
    return t === undefined ? undefined : Date.now() + t;
  }

  /** Runs attempts until one succeeds or the policy gives up; `attemptFn` performs one attempt. */
  async function withAttempts<R>(
    method: DescMethod,
    request: Message,
    header: Headers,
    signal: AbortSignal | undefined,
    deadline: number | undefined,
    values: ContextValues,
    attemptFn: (endpoint: string, attemptDeadline: number | undefined, attempt: number) => Promise<R>,
  ): Promise<R> {
    if (!isReady) await ensureReady(signal);
    const tried = values.get(TRIED_ENDPOINTS) ?? new Set<string>();
    // Hooks run synchronously between the awaits: hookCallValues() names this call meanwhile.
    let outer = hookValues;
    hookValues = values;
    let done: ReturnType<NonNullable<CallPolicy["begin"]>>;
    try {
      done = policy.begin?.(method);
    } finally {
      hookValues = outer;
    }
    for (let attempt = 1; ; attempt++) {
      const endpoint = balancer.pick(tried);
      if (endpoint === undefined) {
        const err = new ConnectError(`no endpoints known for ${serviceName}`, Code.Unavailable);
        done?.(false, err.code);
        throw err;
      }
      // With one endpoint there is nothing to avoid: skip the bookkeeping.
      if (balancer.endpoints().length > 1) {
        tried.add(endpoint);
        if (tried.size >= balancer.endpoints().length) tried.clear();
      }
      // A per-try timeout moves the call to another endpoint; with a single one there is none, and
      // cutting a slow attempt only to resend it to the same replica would waste its work.
      const attemptDeadline = policy.attemptDeadline && balancer.endpoints().length > 1 ? policy.attemptDeadline(method, request, deadline, attempt) : deadline;
      const started = balancer.start(endpoint);
      let res: R;
      try {
        res = await attemptFn(endpoint, attemptDeadline, attempt);
      } catch (e) {
        let delay: number;
        outer = hookValues;
        hookValues = values;
        try {
          const ae = e instanceof AttemptError ? e : new AttemptError(ConnectError.from(e), false);
          const perTryTimeout =
            ae.error.code === Code.DeadlineExceeded &&
            attemptDeadline !== undefined &&
            attemptDeadline !== deadline &&
            Date.now() >= attemptDeadline - PER_TRY_SLACK_MS;
          const outcome = outcomeOf(ae.error.code, perTryTimeout);
          balancer.finish(endpoint, started, outcome);
          policy.onAttempt?.(method, endpoint, outcome, ae.error.code, attempt);
          const d = signal?.aborted ? undefined : policy.retryDelay?.({ method, request, header, attempt, error: ae, deadline, perTryTimeout });
          if (d === undefined) {
            done?.(false, ae.error.code);
            if (perTryTimeout) {
              const ms = attemptDeadline! - started;
              throw new ConnectError(`per-try timeout (${ms} ms) of attempt ${attempt} on ${endpoint}, no retry allowed: ${ae.error.rawMessage}`, Code.DeadlineExceeded, ae.error.metadata);
            }
            throw ae.error;
          }
          if (deadline !== undefined && Date.now() + d >= deadline) {
            done?.(false, Code.DeadlineExceeded);
            throw new ConnectError(`deadline reached before attempt ${attempt + 1}: ${ae.error.rawMessage}`, Code.DeadlineExceeded);
          }
          delay = d;
        } finally {
          hookValues = outer;
        }
        header.set("grpc-previous-rpc-attempts", String(attempt));
        if (delay > 0) await waitMs(delay, signal);
        continue;
      }
      outer = hookValues;
      hookValues = values;
      try {
        balancer.finish(endpoint, started, "success");
        policy.onAttempt?.(method, endpoint, "success", undefined, attempt);
        done?.(true);
      } finally {
        hookValues = outer;
      }
      return res;
    }
  }

  const unaryRaw = async (req: UnaryRequest): Promise<UnaryResponse> => {
    const deadline = callDeadline(req.method, timeoutOf(req));
    const signal = policy.signal ? policy.signal(req.method, req.signal) : req.signal;
    return withAttempts(req.method, req.message, req.header, signal, deadline, req.contextValues, async (endpoint, attemptDeadline) => {
      const r = await unaryCall(pool.get(endpoint), req.method, req.message, { deadline: attemptDeadline, header: req.header, signal });
      return {
        stream: false as const,
        service: req.service,
        method: req.method,
        message: r.message,
        get header() {
          return r.header;
        },
        get trailer() {
          return r.trailer;
        },
      };
    });
  };

  const streamRaw = async (req: StreamRequest): Promise<StreamResponse> => {
    let first: Message | undefined;
    for await (const m of req.message) {
      first = m;
      break;
    }
    if (first === undefined) throw new ConnectError("a server-streaming call needs one request message", Code.InvalidArgument);
    const request = first;
    const deadline = callDeadline(req.method, timeoutOf(req));
    const signal = policy.signal ? policy.signal(req.method, req.signal) : req.signal;
    // Retries apply only until the stream is established (response headers arrived, gRFC A6).
    return withAttempts(req.method, request, req.header, signal, deadline, req.contextValues, async (endpoint, attemptDeadline) => {
      const s = serverStreamCall(pool.get(endpoint), req.method, request, { deadline: attemptDeadline, header: req.header, signal });
      const header = await s.header;
      const trailer = new Headers();
      void s.trailer.then((t) => t.forEach((v, k) => trailer.append(k, v)));
      return { stream: true as const, service: req.service, method: req.method, header, message: s.messages, trailer };
    });
  };

  /** The request object both call kinds hand to the interceptor chain; the caller's timeout rides in its context values. */
  function requestOf<S extends boolean>(
    stream: S,
    method: DescMethod,
    signal: AbortSignal | undefined,
    timeoutMs: number | undefined,
    header: HeadersInit | undefined,
    contextValues: ContextValues | undefined,
    message: S extends true ? AsyncIterable<Message> : Message,
  ): S extends true ? StreamRequest : UnaryRequest {
    const req = {
      stream,
      service: method.parent,
      method,
      requestMethod: "POST",
      url: methodPath(method),
      signal: signal ?? NEVER_ABORTED,
      header: new Headers(header),
      contextValues: contextValues ?? createContextValues(),
      message,
    };
    req.contextValues.set(TIMEOUT_KEY, timeoutMs);
    return req as never;
  }

  const timeoutOf = (req: UnaryRequest | StreamRequest) => req.contextValues.get(TIMEOUT_KEY);

  const unaryFn = (opts.interceptors ?? []).reduceRight((next, ic) => ic(next as never) as never, unaryRaw as (r: UnaryRequest) => Promise<UnaryResponse>);
  const streamFn = (opts.interceptors ?? []).reduceRight((next, ic) => ic(next as never) as never, streamRaw as (r: StreamRequest) => Promise<StreamResponse>);

  return {
    balancer,
    // Not async: the interceptor chain's promise is the call's. An async function returning it
    // would wrap it in one more promise, resolved two microtasks later, on every call.
    unary<I extends DescMessage, O extends DescMessage>(
      method: DescMethodUnary<I, O>,
      signal: AbortSignal | undefined,
      timeoutMs: number | undefined,
      header: HeadersInit | undefined,
      input: MessageInitShape<I>,
      contextValues?: ContextValues,
    ): Promise<UnaryResponse<I, O>> {
      try {
        const message = isMessage(input, method.input) ? input : create(method.input, input);
        return unaryFn(requestOf(false, method, signal, timeoutMs, header, contextValues, message)) as Promise<UnaryResponse<I, O>>;
      } catch (e) {
        // Like an async function: a bad input (or a throwing interceptor) rejects, never throws.
        return Promise.reject(e);
      }
    },
    async stream<I extends DescMessage, O extends DescMessage>(
      method: DescMethodStreaming<I, O>,
      signal: AbortSignal | undefined,
      timeoutMs: number | undefined,
      header: HeadersInit | undefined,
      input: AsyncIterable<MessageInitShape<I>>,
      contextValues?: ContextValues,
    ): Promise<StreamResponse<I, O>> {
      if (method.methodKind !== "server_streaming") throw new ConnectError(`${method.methodKind} is not supported by meshwork`, Code.Unimplemented);
      async function* messages() {
        for await (const m of input) yield isMessage(m, method.input) ? m : create(method.input, m);
      }
      return (await streamFn(requestOf(true, method, signal, timeoutMs, header, contextValues, messages()))) as StreamResponse<I, O>;
    },
    close() {
      unsubscribe();
      if (ownPool) pool.close();
    },
  };
}
