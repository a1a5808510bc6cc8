import type { DescMethodStreaming, DescMethodUnary, DescService, Message } from "@bufbuild/protobuf";
import { Code, ConnectError, createContextKey, type HandlerContext, type Transport, type UnaryResponse } from "@connectrpc/connect";
import type { IncomingHttpHeaders } from "node:http";
import { IDENTITY_HEADER, signIdentity, type Identity, type IdentityKey } from "../mesh/auth/index.js";
import { bearerToken, requireScopes, type TokenVerifier } from "./auth.js";
import { publicError } from "./errors.js";
import type { GatewayMethod } from "./methods.js";
import type { RateLimiter } from "./rate-limit.js";

/** Gives the Connect transport for a service by its type name, e.g. "catalog.v1.CatalogService". */
export type TransportFactory = (serviceTypeName: string) => Transport;

/** Deadline rules of the gateway. */
export interface DeadlineOptions {
  defaultMs: number;
  maxMs: number;
  maxStreamMs: number;
}

/** Per-request facts the HTTP layer knows and the forwarding handlers need. */
export interface RequestInfo {
  requestId: string;
  clientAddress: string;
  /** Told the verified caller's subject, for the access log and the request's span. */
  trace?: { setSubject(subject: string): void };
}

/** Context key carrying {@link RequestInfo} into connect-node handlers. */
export const REQUEST_INFO = createContextKey<RequestInfo>({ requestId: "", clientAddress: "" }, { description: "meshwork gateway request" });

/** Client headers copied to the backend call; everything else (identity-ish headers included) is dropped. */
const PASSED_THROUGH = ["traceparent", "tracestate", "baggage"];

// The gateway re-signs a caller's identity at most every 30 s (half the JWS's 60 s life), so a
// busy caller costs one HMAC signature per half-minute and a backend never sees a stale one.
const IDENTITY_REUSE_MS = 30_000;
// Bounds the signed-identity cache like the token cache (~1 KiB per entry).
const IDENTITY_CACHE_MAX = 10_000;

/** What a request needs before it may be forwarded. */
export interface Admission {
  /** Headers for the backend call (request id, signed identity, trace context). */
  header: Record<string, string>;
  /** The deadline the call gets, in ms. */
  timeoutMs: number;
}

/**
 * The gateway's protocol-independent core: admission (bearer token, scopes, rate limit, deadline)
 * and forwarding over the mesh transports. Every protocol path calls it, so they enforce the same
 * rules.
 */
export class GatewayCore {
  private readonly transports = new Map<string, Transport>();
  private readonly signed = new Map<string, { jws: string; untilMs: number }>();

  constructor(
    private readonly deps: {
      transportFor: TransportFactory;
      verifier: TokenVerifier;
      limiter: RateLimiter;
      identityKey: IdentityKey;
      deadlines: DeadlineOptions;
    },
  ) {}

  /**
   * Checks that the caller may make this call and prepares its backend headers and deadline.
   * Rejects Unauthenticated (missing/invalid token on a non-public method, or any invalid token),
   * PermissionDenied (missing scope) or ResourceExhausted (rate limit, with retry-after). Without a
   * token there is nothing to wait for: the answer (or the refusal, thrown) comes at once, which
   * spares anonymous calls a promise; callers simply `await` it.
   */
  admit(
    route: GatewayMethod,
    authorization: string | undefined | null,
    info: RequestInfo,
    requestedTimeoutMs: number | undefined,
    headers: Headers | IncomingHttpHeaders,
  ): Admission | Promise<Admission> {
    let token: string | undefined;
    try {
      token = bearerToken(authorization);
      if (token === undefined && !route.public) throw new ConnectError(`${route.rpcPath} needs a bearer token`, Code.Unauthenticated);
    } catch (e) {
      throw this.refused(e, undefined, info);
    }
    if (token === undefined) {
      this.charge(`addr:${info.clientAddress}`);
      return this.admission(route, info, requestedTimeoutMs, headers);
    }
    return this.admitToken(route, token, info, requestedTimeoutMs, headers);
  }

  private async admitToken(route: GatewayMethod, token: string, info: RequestInfo, requestedTimeoutMs: number | undefined, headers: Headers | IncomingHttpHeaders): Promise<Admission> {
    let identity: Identity;
    try {
      identity = await this.deps.verifier.verify(token);
    } catch (e) {
      throw this.refused(e, token, info);
    }
    info.trace?.setSubject(identity.subject);
    this.charge(`sub:${identity.subject}`);
    if (!route.public) requireScopes(identity, route.scopes, route.rpcPath);
    const a = this.admission(route, info, requestedTimeoutMs, headers);
    a.header[IDENTITY_HEADER] = await this.signedIdentity(token, identity);
    return a;
  }

  /** Unauthenticated with the WWW-Authenticate challenge; failed attempts count against the address, so guessing tokens is rate limited too. */
  private refused(e: unknown, token: string | undefined, info: RequestInfo): ConnectError {
    this.charge(`addr:${info.clientAddress}`);
    const err = ConnectError.from(e, Code.Unauthenticated);
    return new ConnectError(err.rawMessage, err.code, { "www-authenticate": token === undefined ? 'Bearer realm="meshwork"' : 'Bearer realm="meshwork", error="invalid_token"' });
  }

  private admission(route: GatewayMethod, info: RequestInfo, requestedTimeoutMs: number | undefined, headers: Headers | IncomingHttpHeaders): Admission {
    const out: Record<string, string> = { "x-request-id": info.requestId };
    for (const h of PASSED_THROUGH) {
      const v = headers instanceof Headers ? headers.get(h) : headers[h];
      if (typeof v === "string" && v !== "") out[h] = v;
      else if (Array.isArray(v) && v[0]) out[h] = v[0];
    }
    return { header: out, timeoutMs: this.timeoutFor(route, requestedTimeoutMs) };
  }

  /** The deadline of a call: the client's, else the contract's, else the default; capped by the maximum. */
  timeoutFor(route: GatewayMethod, requestedMs: number | undefined): number {
    const d = this.deps.deadlines;
    if (route.streaming) return Math.min(requestedMs ?? d.maxStreamMs, d.maxStreamMs);
    return Math.min(requestedMs ?? route.timeoutMs ?? d.defaultMs, d.maxMs);
  }

  /** Forwards a unary call; rejects with a client-safe ConnectError. */
  async unary(route: GatewayMethod, input: Message, admission: Admission, signal: AbortSignal): Promise<Message> {
    try {
      return (await this.send(route, input, admission, signal)).message;
    } catch (e) {
      throw forwardError(e, signal);
    }
  }

  /**
   * {@link unary} without its async layer: the transport's own promise. Its rejection (or a throw)
   * is not client-safe yet: pass it through {@link forwardError}.
   */
  send(route: GatewayMethod, input: Message, admission: Admission, signal: AbortSignal): Promise<UnaryResponse> {
    return this.transport(route.service).unary(route.method as DescMethodUnary, signal, admission.timeoutMs, admission.header, input);
  }

  /** Opens a server stream; the iterable rejects with client-safe ConnectErrors. */
  async stream(route: GatewayMethod, input: Message, admission: Admission, signal: AbortSignal): Promise<AsyncIterable<Message>> {
    let res;
    try {
      res = await this.transport(route.service).stream(route.method as DescMethodStreaming, signal, admission.timeoutMs, admission.header, single(input));
    } catch (e) {
      throw publicError(abortReason(signal) ?? e);
    }
    const messages = res.message;
    return (async function* () {
      try {
        yield* messages;
      } catch (e) {
        throw publicError(abortReason(signal) ?? e);
      }
    })();
  }

  private transport(service: DescService): Transport {
    let t = this.transports.get(service.typeName);
    if (!t) {
      t = this.deps.transportFor(service.typeName);
      this.transports.set(service.typeName, t);
    }
    return t;
  }

  private charge(key: string): void {
    const waitMs = this.deps.limiter.take(key);
    if (waitMs > 0) {
      const seconds = Math.max(1, Math.ceil(waitMs / 1000));
      throw new ConnectError(`rate limit exceeded; retry in ${seconds} s`, Code.ResourceExhausted, { "retry-after": String(seconds) });
    }
  }

  private async signedIdentity(token: string, identity: Identity): Promise<string> {
    const now = Date.now();
    const hit = this.signed.get(token);
    if (hit && hit.untilMs > now) return hit.jws;
    const jws = await signIdentity(identity, this.deps.identityKey);
    if (this.signed.size >= IDENTITY_CACHE_MAX) {
      for (const [k, v] of this.signed) if (v.untilMs <= now) this.signed.delete(k);
      if (this.signed.size >= IDENTITY_CACHE_MAX) this.signed.clear();
    }
    this.signed.set(token, { jws, untilMs: now + IDENTITY_REUSE_MS });
    return jws;
  }
}

/** The client-safe error of a failed backend call made with `signal`. */
export function forwardError(e: unknown, signal: AbortSignal): ConnectError {
  return publicError(abortReason(signal) ?? e);
}

/**
 * Why the caller's signal fired, if it did: connect-node aborts a handler's signal with
 * DeadlineExceeded at the client's deadline, and the transport then reports only "cancelled".
 */
function abortReason(signal: AbortSignal): ConnectError | undefined {
  return signal.aborted && signal.reason instanceof ConnectError ? signal.reason : undefined;
}

async function* single(m: Message): AsyncIterable<Message> {
  yield m;
}

/**
 * Connect handlers that forward every exposed method of the table through `core`, for
 * `router.rpc(method, handler)`. Errors keep their code, message and details.
 */
export function forwardingHandlers(core: GatewayCore, routes: readonly GatewayMethod[]): Array<[GatewayMethod, (req: Message, ctx: HandlerContext) => unknown]> {
  const admitFor = (route: GatewayMethod, ctx: HandlerContext) =>
    core.admit(route, ctx.requestHeader.get("authorization"), ctx.values.get(REQUEST_INFO), ctx.timeoutMs(), ctx.requestHeader);
  return routes.map((route) => {
    if (route.streaming) {
      return [
        route,
        async function* (req: Message, ctx: HandlerContext) {
          const admission = await admitFor(route, ctx);
          yield* await core.stream(route, req, admission, ctx.signal);
        },
      ];
    }
    return [
      route,
      async (req: Message, ctx: HandlerContext) => {
        const admission = await admitFor(route, ctx);
        return core.unary(route, req, admission, ctx.signal);
      },
    ];
  });
}
