import { fromBinary, type DescService, type JsonValue, type Message } from "@bufbuild/protobuf";
import { Code, ConnectError, cors as connectCors, createConnectRouter, createContextValues, type ContextValues } from "@connectrpc/connect";
import { compressionBrotli, compressionGzip, universalRequestFromNodeRequest, universalResponseToNodeResponse } from "@connectrpc/connect-node";
import { errorToJson, parseTimeout } from "@connectrpc/connect/protocol-connect";
import type { UniversalHandler, UniversalServerRequest } from "@connectrpc/connect/protocol";
import { context, type Context } from "@opentelemetry/api";
import type { JSONWebKeySet } from "jose";
import { randomUUID } from "node:crypto";
import { setMaxListeners } from "node:events";
import { promisify } from "node:util";
import * as zlib from "node:zlib";
import { readFileSync } from "node:fs";
import * as http from "node:http";
import * as http2 from "node:http2";
import * as net from "node:net";
import type { IdentityKey } from "../mesh/auth/index.js";
import { Health, HealthState, healthService, ServingStatus } from "../mesh/server/health.js";
import { traceHttpRequests, type HttpRequestTrace } from "../mesh/telemetry/http-tracing.js";
import type { Logger } from "../mesh/telemetry/index.js";
import { TokenVerifier, type JwtOptions } from "./auth.js";
import { CONFIG_DEFAULTS, type GatewayConfig } from "./config.js";
import { grpcErrorHeaders, jsonErrorResponse, publicError } from "./errors.js";
import { messageFromJsonValue, messageToJsonString } from "./json-codec.js";
import { forwardError, forwardingHandlers, GatewayCore, REQUEST_INFO, type Admission, type DeadlineOptions, type RequestInfo, type TransportFactory } from "./forward.js";
import { exposedMethods, GATEWAY_SERVICES, matchRest, type GatewayMethod } from "./methods.js";
import { openApiDocument } from "./openapi.js";
import { RateLimiter } from "./rate-limit.js";
import { reflectionServices } from "./reflection.js";
import { restRequestJson } from "./rest.js";

/** What the gateway needs; {@link depsFromConfig} builds it from {@link GatewayConfig}. */
export interface GatewayDeps {
  /** The mesh transport of a service by type name (discovery-backed in production). */
  transportFor: TransportFactory;
  jwt: JwtOptions;
  identityKey: IdentityKey;
  /** Allowed CORS origins; "*" allows any. Default: none (same-origin only). */
  corsOrigins?: string[];
  bodyLimitBytes?: number;
  deadlines?: Partial<DeadlineOptions>;
  /** Per-caller token bucket; rps 0 disables. */
  rateLimit?: { rps: number; burst: number };
  /** Serve Connect unary JSON and REST unary on plain node:http (default true). */
  fastPath?: boolean;
  /** Services to front (default: the shop's five). */
  services?: readonly DescService[];
  /** SSE heartbeat comment interval (default 15 s). */
  sseHeartbeatMs?: number;
  /**
   * Unexpected failures at error level, and one access-log line per request (info; 5xx at error)
   * unless `accessLog` is false. Every request gets a server span and HTTP metrics regardless.
   */
  logger?: Logger;
  /** One access-log line per request when a logger is given (default true). */
  accessLog?: boolean;
}

/** An unstarted gateway server. */
export interface Gateway {
  /** Starts listening (HTTP/1.1 and h2c on one port); resolves with the bound port. */
  listen(port?: number, host?: string): Promise<number>;
  /** Ends streams, stops listening and closes every connection. Transports stay open (the caller owns them). */
  close(): Promise<void>;
  /** The exposed method table, as served. */
  readonly methods: readonly GatewayMethod[];
  /** Requests served so far by each path (for metrics, and for tests that prove which path ran). */
  readonly served: { fast: number; connect: number; sse: number };
  /** `grpc.health.v1.Health` of the gateway (also behind `/healthz`): SERVING once listening, NOT_SERVING for good once draining. */
  readonly health: HealthState;
}

// Chromium caps preflight caching at 2 h; asking for more changes nothing.
const CORS_MAX_AGE_SEC = 7200;
// Comments every 15 s keep SSE connections alive through proxies that drop idle connections
// after 30-60 s (nginx's default proxy_read_timeout is 60 s).
const SSE_HEARTBEAT_MS = 15_000;
// Matches the mesh's gRPC message limit (mesh/client CLIENT_CHANNEL_OPTIONS): larger responses cannot arrive anyway.
const WRITE_MAX_BYTES = 4 * 1024 * 1024;
// Slow-loris guard: a client gets 10 s to send its headers.
const HEADERS_TIMEOUT_MS = 10_000;
// A whole request (1 MiB at most) within 30 s; responses, including SSE, are not limited by this.
const REQUEST_TIMEOUT_MS = 30_000;
// Longer than the 60 s idle timeout of common load balancers, so they close first and never
// send on a connection the gateway just closed.
const KEEP_ALIVE_TIMEOUT_MS = 65_000;
// Per-connection concurrency for HTTP/2 clients; grpc-js and browsers queue beyond it.
const H2_MAX_CONCURRENT_STREAMS = 1000;

const JSON_CT = /^application\/json(?:;\s*charset=utf-8)?$/i;
const PROTO_CT = /^application\/proto$/i;
const ENCODINGS = new Set(["identity", "gzip", "br"]);
const gunzip = promisify(zlib.gunzip) as (b: Buffer, o: zlib.ZlibOptions) => Promise<Buffer>;
const brotliDecompress = promisify(zlib.brotliDecompress) as (b: Buffer, o: zlib.BrotliOptions) => Promise<Buffer>;
const CORS_ALLOWED_HEADERS = [...connectCors.allowedHeaders, "Authorization", "X-Request-Id", "Traceparent", "Tracestate"].join(", ");
const CORS_EXPOSED_HEADERS = [...connectCors.exposedHeaders, "X-Request-Id", "Retry-After", "WWW-Authenticate"].join(", ");
const CORS_METHODS = "GET, POST, PUT, PATCH, DELETE";

type Req = http.IncomingMessage | http2.Http2ServerRequest;
// HTTP/2 compat responses offer the same calls used here; one type keeps the code readable.
type Res = http.ServerResponse;

/** A protocol-level refusal: its own HTTP status, with a Connect error body. */
class HttpError extends Error {
  constructor(
    readonly status: number,
    readonly error: ConnectError,
    readonly headers: Record<string, string> = {},
  ) {
    super(error.message);
  }
}

/**
 * Builds the gateway: Connect (JSON and binary, unary and server streaming, GET for
 * NO_SIDE_EFFECTS), gRPC-Web and gRPC through connect-node; REST routes and SSE from the
 * contracts' `http` options; reflection; `/openapi.json`. A fast path on plain node:http serves
 * Connect unary JSON and REST unary calls without connect-node's per-request machinery; both
 * paths share admission and forwarding ({@link GatewayCore}) and are tested by the same suite.
 */
export function build(deps: GatewayDeps): Gateway {
  const methods = exposedMethods(deps.services ?? GATEWAY_SERVICES);
  const bodyLimit = deps.bodyLimitBytes ?? CONFIG_DEFAULTS.bodyLimitBytes;
  const fastPath = deps.fastPath ?? true;
  const heartbeatMs = deps.sseHeartbeatMs ?? SSE_HEARTBEAT_MS;
  const corsAny = deps.corsOrigins?.includes("*") ?? false;
  const corsOrigins = new Set(deps.corsOrigins ?? []);
  const log = deps.logger;
  const health = new HealthState();
  const shutdown = new AbortController();
  // connect-node and the SSE path add one listener per call in flight to this signal; hundreds of
  // concurrent calls are normal, not a leak.
  setMaxListeners(0, shutdown.signal);
  const served = { fast: 0, connect: 0, sse: 0 };

  const deadlines: DeadlineOptions = {
    defaultMs: deps.deadlines?.defaultMs ?? CONFIG_DEFAULTS.defaultDeadlineMs,
    maxMs: deps.deadlines?.maxMs ?? CONFIG_DEFAULTS.maxDeadlineMs,
    maxStreamMs: deps.deadlines?.maxStreamMs ?? CONFIG_DEFAULTS.maxStreamMs,
  };
  const core = new GatewayCore({
    transportFor: deps.transportFor,
    verifier: new TokenVerifier(deps.jwt),
    limiter: new RateLimiter(deps.rateLimit ?? { rps: CONFIG_DEFAULTS.rateLimitRps, burst: CONFIG_DEFAULTS.rateLimitBurst }),
    identityKey: deps.identityKey,
    deadlines,
  });

  const router = createConnectRouter({
    readMaxBytes: bodyLimit,
    writeMaxBytes: WRITE_MAX_BYTES,
    // Unknown fields are refused at the edge (connect defaults to ignoring them): a typo in a
    // field name fails loudly instead of being silently dropped. The fast path does the same.
    jsonOptions: { ignoreUnknownFields: false },
    acceptCompression: [compressionGzip, compressionBrotli],
    shutdownSignal: shutdown.signal,
  });
  for (const [route, handler] of forwardingHandlers(core, methods)) router.rpc(route.method, handler as never);
  const exposedPaths = new Set(methods.map((m) => m.rpcPath));
  for (const [desc, impl] of reflectionServices(deps.services ?? GATEWAY_SERVICES, { exposeMethod: (m) => exposedPaths.has(`/${m.parent.typeName}/${m.name}`) })) {
    router.service(desc, impl as never);
  }
  router.service(Health, healthService(health));
  const byPath = new Map(methods.map((m) => [m.rpcPath, m]));
  const rpcs = new Map<string, { handler: UniversalHandler; route?: GatewayMethod; rpc: { system: string; service: string; method: string } }>();
  for (const h of router.handlers) {
    rpcs.set(h.requestPath, { handler: h, route: byPath.get(h.requestPath), rpc: { system: "connect_rpc", service: h.service.typeName, method: h.method.name } });
  }
  const openapi = JSON.stringify(openApiDocument(methods));

  // The span, request id, metrics and access line of every request come from the wrapper; serve()
  // names the route once it has matched it. serve() and the functions it dispatches to are synchronous up to the first wait (the body,
  // the token, the backend) and return that wait's promise: fewer async layers, fewer promises per
  // request. A refusal is thrown, synchronously or as a rejection; fail() answers both the same.
  const handle = traceHttpRequests<Req, Res>(
    (req, res, t) => {
      try {
        serve(req, res, t)?.catch((e: unknown) => fail(req, res, t, e));
      } catch (e) {
        fail(req, res, t, e);
      }
    },
    // Generated ids are UUIDs, not the trace id: a client may send the same traceparent twice.
    { logger: deps.accessLog === false ? undefined : log, newRequestId: randomUUID },
  );

  function fail(req: Req, res: Res, t: HttpRequestTrace, e: unknown): void {
    if (e instanceof HttpError) return sendError(res, e.status, e.error, e.headers);
    const err = publicError(e);
    if (err.code === Code.Internal) {
      t.recordError(e);
      log?.error({ err: e, url: req.url }, "gateway request failed");
    }
    if (!res.headersSent) sendJsonError(res, err);
    else res.destroy();
  }

  function serve(req: Req, res: Res, t: HttpRequestTrace): Promise<void> | void {
    const requestId = t.requestId;
    const origin = req.headers.origin;
    if (origin !== undefined) {
      const allowed = corsAny || corsOrigins.has(origin);
      if (req.method === "OPTIONS" && req.headers["access-control-request-method"] !== undefined) return preflight(res, origin, allowed);
      // The answer depends on the origin: caches must not hand one origin's response to another.
      res.setHeader("vary", "Origin");
      if (allowed) {
        res.setHeader("access-control-allow-origin", origin);
        res.setHeader("access-control-expose-headers", CORS_EXPOSED_HEADERS);
      }
    }
    const url = req.url ?? "/";
    const q = url.indexOf("?");
    const path = q < 0 ? url : url.slice(0, q);
    const query = q < 0 ? "" : url.slice(q + 1);
    const contentType = req.headers["content-type"] ?? "";
    const grpc = contentType.startsWith("application/grpc");
    const info: RequestInfo = { requestId, clientAddress: req.socket?.remoteAddress ?? "unknown", trace: t };

    const rpc = rpcs.get(path);
    if (rpc) {
      t.setRoute(path, grpc ? { ...rpc.rpc, system: contentType.startsWith("application/grpc-web") ? "grpc_web" : "grpc" } : rpc.rpc);
      return serveRpc(req, res, rpc.handler, rpc.route, contentType, grpc, info, t);
    }
    if (grpc) return sendGrpcError(res, new ConnectError(`no method ${path.slice(0, 200)}`, Code.Unimplemented), contentType);
    if (path === "/openapi.json" || path === "/healthz") {
      t.setRoute(path);
      if (req.method !== "GET") throw methodNotAllowed(req.method, path, ["GET"]);
      const serving = path === "/openapi.json" || health.get("") === ServingStatus.SERVING;
      const body = path === "/openapi.json" ? openapi : `{"status":"${serving ? "SERVING" : "NOT_SERVING"}"}`;
      res.writeHead(serving ? 200 : 503, { "content-type": "application/json", "content-length": Buffer.byteLength(body) });
      res.end(body);
      return;
    }
    let match;
    try {
      match = matchRest(methods, req.method ?? "", path);
    } catch {
      throw new HttpError(400, new ConnectError("malformed percent-encoding in the path", Code.InvalidArgument));
    }
    if (match.kind === "found") {
      t.setRoute(match.route.rest!.template);
      return serveRest(req, res, match.route, match.params, query, info, t);
    }
    if (match.kind === "method-not-allowed") throw methodNotAllowed(req.method, path, match.allow);
    throw new HttpError(404, new ConnectError(`no route for ${String(req.method).slice(0, 16)} ${path.slice(0, 200)}`, Code.Unimplemented));
  }

  function preflight(res: Res, origin: string, allowed: boolean): void {
    if (!allowed) throw new HttpError(403, new ConnectError(`origin ${origin.slice(0, 200)} is not allowed`, Code.PermissionDenied));
    res.writeHead(204, {
      "access-control-allow-origin": origin,
      "access-control-allow-methods": CORS_METHODS,
      "access-control-allow-headers": CORS_ALLOWED_HEADERS,
      "access-control-max-age": String(CORS_MAX_AGE_SEC),
      vary: "Origin, Access-Control-Request-Method, Access-Control-Request-Headers",
    });
    res.end();
  }

  function serveRpc(req: Req, res: Res, handler: UniversalHandler, route: GatewayMethod | undefined, contentType: string, grpc: boolean, info: RequestInfo, t: HttpRequestTrace): Promise<void> | void {
    const method = req.method ?? "";
    if (!handler.allowedMethods.includes(method)) {
      if (grpc) return sendGrpcError(res, new ConnectError(`HTTP method ${method.slice(0, 16)} not allowed`, Code.Unimplemented), contentType);
      throw methodNotAllowed(method, handler.requestPath, handler.allowedMethods);
    }
    if (req.httpVersionMajor === 1) {
      // gRPC proper needs HTTP/2 trailers, and bidirectional streams (reflection) need HTTP/2
      // full duplex. connect-node would answer 505; the edge keeps 5xx for its own failures.
      if (grpc && !contentType.startsWith("application/grpc-web")) {
        throw new HttpError(415, new ConnectError("gRPC needs HTTP/2; use gRPC-Web or Connect over HTTP/1.1", Code.InvalidArgument));
      }
      if (handler.method.methodKind === "bidi_streaming" || handler.method.methodKind === "client_streaming") {
        throw new HttpError(415, new ConnectError(`${handler.requestPath} is a ${handler.method.methodKind.replace("_", " ")} method and needs HTTP/2`, Code.InvalidArgument));
      }
    }
    const capMs = route && !route.streaming ? deadlines.maxMs : deadlines.maxStreamMs;
    if (grpc) {
      // Raw body stream: reflection is bidirectional, and connect-node enforces readMaxBytes
      // per message with the gRPC status ResourceExhausted.
      return runUniversal(handler, universalRequestFromNodeRequest(req, res, undefined, contextValues(info)), res, capMs);
    }
    if (method === "POST" && !handler.supportedContentType(contentType)) {
      throw new HttpError(415, new ConnectError(`content type "${contentType.slice(0, 100)}" is not supported by ${handler.requestPath}`, Code.InvalidArgument));
    }
    // An unknown content coding is the client's error (RFC 9110 §15.5.16: 415), not 501 as
    // connect-node would answer.
    const streamEncoding = header(req, "connect-content-encoding");
    if (streamEncoding !== undefined && !ENCODINGS.has(streamEncoding)) {
      throw new HttpError(415, new ConnectError(`content encoding "${streamEncoding.slice(0, 50)}" is not supported; use gzip, br or identity`, Code.InvalidArgument));
    }
    if (fastPath && route && !route.streaming && method === "POST" && JSON_CT.test(contentType)) {
      return fastUnaryConnect(req, res, route, info, t);
    }
    return serveRpcBody(req, res, handler, route, method, contentType, info, capMs);
  }

  async function serveRpcBody(req: Req, res: Res, handler: UniversalHandler, route: GatewayMethod | undefined, method: string, contentType: string, info: RequestInfo, capMs: number) {
    const body = await readDecodedBody(req, bodyLimit);
    if (route && !route.streaming && method === "POST" && PROTO_CT.test(contentType)) {
      // connect-es reports undecodable binary as Internal (500); at the edge it is the client's
      // fault, so it is checked here and refused as invalid_argument (400).
      try {
        fromBinary(route.method.input, body);
      } catch (e) {
        throw new HttpError(400, new ConnectError(`cannot decode ${route.method.input.typeName} from binary: ${(e as Error).message.slice(0, 200)}`, Code.InvalidArgument));
      }
    }
    return runUniversal(handler, preReadRequest(req, res, body, info), res, capMs);
  }

  /** Connect unary JSON without connect-node; refusals before forwarding (body limits, encodings) answer as on the general path. */
  function fastUnaryConnect(req: Req, res: Res, route: GatewayMethod, info: RequestInfo, t: HttpRequestTrace): void {
    readDecodedBodyInto(req, bodyLimit, new FastCall(req, res, route, info, t, context.active()));
  }

  function startWithBody(call: FastCall, body: Buffer): void {
    call.start(undefined, body);
  }

  /**
   * One unary call on the fast path (Connect JSON or REST): the body, the admission and the
   * backend's answer continue on this object, so a call costs the transport's promise and one
   * `then` instead of four async layers (each promise pays the AsyncLocalStorage hook).
   */
  class FastCall implements BodySink {
    constructor(
      private readonly req: Req,
      private readonly res: Res,
      private readonly route: GatewayMethod,
      private readonly info: RequestInfo,
      private readonly t: HttpRequestTrace,
      /** The request's context (its span) when the body is read: "end" fires outside it. */
      private readonly ctx?: Context,
    ) {}

    /** The Connect body arrived; refusals before this point were answered as on the general path. */
    body(body: Buffer): void {
      context.with(this.ctx!, startWithBody, undefined, this, body);
    }

    /** The body could not be read: the refusal the general path gives (413, 415, …). */
    error(e: unknown): void {
      fail(this.req, this.res, this.t, e);
    }

    /** Decodes the input (REST: from `json`; Connect: from `body`), admits and forwards. */
    start(json: JsonValue | undefined, body: Buffer | undefined): void {
      served.fast++;
      const { req, route } = this;
      try {
        const timeout = parseTimeout(header(req, "connect-timeout-ms") ?? null, Number.MAX_SAFE_INTEGER);
        if (timeout.error) throw timeout.error;
        const input = body !== undefined ? parseJsonMessage(route, body) : messageFromJson(route, json!);
        const admission = core.admit(route, header(req, "authorization"), this.info, timeout.timeoutMs, req.headers);
        if (admission instanceof Promise) {
          admission.then(
            (a) => this.forward(input, a),
            (e: unknown) => this.failed(e),
          );
        } else {
          this.forward(input, admission);
        }
      } catch (e) {
        this.failed(e);
      }
    }

    private forward(input: Message, admission: Admission): void {
      const signal = callSignal(this.req, this.res);
      try {
        core.send(this.route, input, admission, signal).then(
          (r) => this.answer(r.message),
          (e: unknown) => this.failed(forwardError(e, signal)),
        );
      } catch (e) {
        this.failed(forwardError(e, signal));
      }
    }

    private answer(output: Message): void {
      try {
        sendJson(this.res, 200, messageToJsonString(this.route.method.output, output));
      } catch (e) {
        this.failed(e);
      }
    }

    private failed(e: unknown): void {
      try {
        sendJsonError(this.res, publicError(e));
      } catch (e2) {
        fail(this.req, this.res, this.t, e2);
      }
    }
  }

  function serveRest(req: Req, res: Res, route: GatewayMethod, params: string[], query: string, info: RequestInfo, t: HttpRequestTrace): Promise<void> | void {
    if (hasBody(req)) return serveRestBody(req, res, route, params, query, info, t);
    return forwardRest(req, res, route, restRequestJson(route, params, query, undefined), info, t);
  }

  async function serveRestBody(req: Req, res: Res, route: GatewayMethod, params: string[], query: string, info: RequestInfo, t: HttpRequestTrace) {
    let bodyJson: JsonValue | undefined;
    const body = await readDecodedBody(req, bodyLimit);
    if (body.length > 0) {
      const ct = req.headers["content-type"] ?? "";
      if (!JSON_CT.test(ct)) throw new HttpError(415, new ConnectError(`content type "${ct.slice(0, 100)}" is not supported; send application/json`, Code.InvalidArgument));
      bodyJson = parseJson(body);
    }
    return forwardRest(req, res, route, restRequestJson(route, params, query, bodyJson), info, t);
  }

  function forwardRest(req: Req, res: Res, route: GatewayMethod, json: JsonValue, info: RequestInfo, t: HttpRequestTrace): Promise<void> | void {
    if (route.streaming) return serveSse(req, res, route, json, info);
    if (fastPath) return new FastCall(req, res, route, info, t).start(json, undefined);
    // General path: transcode to a Connect unary JSON call and let connect-node serve it.
    const rpc = rpcs.get(route.rpcPath)!;
    const ureq = preReadRequest(req, res, Buffer.from(JSON.stringify(json)), info);
    ureq.method = "POST";
    ureq.url = `http://gateway${route.rpcPath}`;
    ureq.header.set("content-type", "application/json");
    return runUniversal(rpc.handler, ureq, res, deadlines.maxMs);
  }

  async function serveSse(req: Req, res: Res, route: GatewayMethod, json: JsonValue, info: RequestInfo) {
    const timeout = parseTimeout(header(req, "connect-timeout-ms") ?? null, Number.MAX_SAFE_INTEGER);
    if (timeout.error) throw new HttpError(400, timeout.error);
    const input = messageFromJson(route, json);
    const admission = await core.admit(route, header(req, "authorization"), info, timeout.timeoutMs, req.headers);
    served.sse++;
    const signal = abortOnClose(res);
    const onShutdown = () => res.destroy();
    shutdown.signal.addEventListener("abort", onShutdown, { once: true });
    // Headers go out at once: a watch may wait minutes for its first message, and EventSource
    // clients count a stream as open only when they see the 200.
    res.writeHead(200, { "content-type": "text/event-stream", "cache-control": "no-cache, no-transform", "x-accel-buffering": "no" });
    res.write(": stream open\n\n");
    const heartbeat = setInterval(() => res.write(": heartbeat\n\n"), heartbeatMs);
    try {
      const messages = await core.stream(route, input, admission, signal);
      for await (const m of messages) {
        if (!res.write(`data: ${messageToJsonString(route.method.output, m)}\n\n`)) await drained(res, signal);
      }
    } catch (e) {
      if (!signal.aborted) res.write(`event: error\ndata: ${JSON.stringify(errorToJson(publicError(e), undefined))}\n\n`);
    } finally {
      clearInterval(heartbeat);
      shutdown.signal.removeEventListener("abort", onShutdown);
      if (!res.writableEnded && !signal.aborted) res.end();
    }
  }

  async function runUniversal(handler: UniversalHandler, ureq: UniversalServerRequest, res: Res, capMs: number) {
    served.connect++;
    clampTimeouts(ureq.header, capMs);
    const ures = await handler(ureq);
    try {
      await universalResponseToNodeResponse(ures, res as never);
    } catch {
      // The client went away mid-response; connect-node has already cancelled the handler.
    }
  }

  function contextValues(info: RequestInfo): ContextValues {
    return createContextValues().set(REQUEST_INFO, info);
  }

  function preReadRequest(req: Req, res: Res, body: Buffer, info: RequestInfo): UniversalServerRequest {
    const header = new Headers();
    for (const [k, v] of Object.entries(req.headers)) {
      // The body handed on is complete and decoded: its framing and coding headers no longer apply.
      if (k.startsWith(":") || v === undefined || k === "content-length" || k === "transfer-encoding" || k === "content-encoding") continue;
      try {
        if (Array.isArray(v)) for (const x of v) header.append(k, x);
        else header.set(k, v);
      } catch {
        // A value Node accepted but the Fetch Headers class refuses: it cannot matter to an RPC.
      }
    }
    return {
      httpVersion: req.httpVersion,
      method: req.method ?? "",
      url: `http://gateway${req.url ?? "/"}`,
      header,
      body: oneChunk(body),
      signal: abortOnClose(res),
      contextValues: contextValues(info),
    };
  }

  // One listening port for HTTP/1.1 and h2c (TOOLCHAIN trap 1): peek at the first bytes and hand
  // the socket to the server that speaks them.
  const h1 = http.createServer({ headersTimeout: HEADERS_TIMEOUT_MS, requestTimeout: REQUEST_TIMEOUT_MS, keepAliveTimeout: KEEP_ALIVE_TIMEOUT_MS }, handle);
  const h2 = http2.createServer({ settings: { maxConcurrentStreams: H2_MAX_CONCURRENT_STREAMS } }, (req, res) => handle(req, res as unknown as Res));
  const sockets = new Set<net.Socket>();
  const sessions = new Set<http2.ServerHttp2Session>();
  h2.on("session", (s: http2.ServerHttp2Session) => {
    sessions.add(s);
    s.once("close", () => sessions.delete(s));
    s.on("error", () => undefined);
  });
  // Requests Node cannot parse never reach the handler: answer them as Node would, and close.
  h1.on("clientError", (err: NodeJS.ErrnoException, socket: net.Socket) => {
    const status = err.code === "HPE_HEADER_OVERFLOW" ? "431 Request Header Fields Too Large" : err.code === "ERR_HTTP_REQUEST_TIMEOUT" ? "408 Request Timeout" : "400 Bad Request";
    if (socket.writable) socket.end(`HTTP/1.1 ${status}\r\nConnection: close\r\nContent-Length: 0\r\n\r\n`);
    else socket.destroy();
  });
  const PREFACE = Buffer.from("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n");
  const listener = net.createServer({ noDelay: true }, (socket) => {
    sockets.add(socket);
    socket.once("close", () => sockets.delete(socket));
    socket.on("error", () => socket.destroy());
    let seen: Buffer = Buffer.alloc(0);
    const onData = (chunk: Buffer) => {
      seen = seen.length === 0 ? chunk : Buffer.concat([seen, chunk]);
      // Three bytes tell "PRI" (the HTTP/2 preface) from any HTTP/1.1 method.
      if (seen.length < 3) return;
      socket.off("data", onData);
      socket.pause();
      socket.unshift(seen);
      const isH2 = seen.subarray(0, 3).equals(PREFACE.subarray(0, 3));
      (isH2 ? h2 : h1).emit("connection", socket);
      if (!isH2) socket.resume();
    };
    socket.on("data", onData);
  });

  return {
    methods,
    served,
    health,
    listen(port = 0, host = "127.0.0.1") {
      return new Promise((resolve, reject) => {
        listener.once("error", reject);
        listener.listen(port, host, () => {
          listener.off("error", reject);
          health.setAll(ServingStatus.SERVING);
          resolve((listener.address() as net.AddressInfo).port);
        });
      });
    },
    async close() {
      health.shutdown();
      shutdown.abort(new ConnectError("gateway shutting down", Code.Unavailable));
      const closed = new Promise<void>((resolve) => listener.close(() => resolve()));
      for (const s of sessions) s.destroy();
      for (const s of sockets) s.destroy();
      h1.closeAllConnections();
      await closed;
    },
  };
}

/** Gateway deps from parsed configuration and a transport factory (reads the JWKS file, if any). */
export function depsFromConfig(config: GatewayConfig, transportFor: TransportFactory): GatewayDeps {
  let jwks: JSONWebKeySet | undefined;
  if (config.jwt.jwksFile) {
    try {
      jwks = JSON.parse(readFileSync(config.jwt.jwksFile, "utf8")) as JSONWebKeySet;
    } catch (e) {
      throw new Error(`MESHWORK_JWKS_FILE ${config.jwt.jwksFile}: ${(e as Error).message}`);
    }
    if (!Array.isArray(jwks?.keys)) throw new Error(`MESHWORK_JWKS_FILE ${config.jwt.jwksFile} has no "keys" array`);
  }
  return {
    transportFor,
    jwt: { secret: config.jwt.secret, jwks, jwksUrl: config.jwt.jwksUrl, issuer: config.jwt.issuer, audience: config.jwt.audience },
    identityKey: config.identityKey,
    corsOrigins: config.corsOrigins,
    bodyLimitBytes: config.bodyLimitBytes,
    deadlines: { defaultMs: config.defaultDeadlineMs, maxMs: config.maxDeadlineMs, maxStreamMs: config.maxStreamMs },
    rateLimit: config.rateLimit,
    fastPath: config.fastPath,
  };
}

function header(req: Req, name: string): string | undefined {
  const v = req.headers[name];
  return Array.isArray(v) ? v[0] : v;
}

/**
 * The request body with its Content-Encoding (gzip, br) undone, at most `limit` bytes before and
 * after decoding (a small compressed body must not expand into a huge one). A body that does not
 * decode is the client's error: 400, not connect-node's 500.
 */
function readDecodedBody(req: Req, limit: number): Promise<Buffer> {
  const encoding = header(req, "content-encoding") ?? "identity";
  if (!ENCODINGS.has(encoding)) {
    return Promise.reject(new HttpError(415, new ConnectError(`content encoding "${encoding.slice(0, 50)}" is not supported; use gzip, br or identity`, Code.InvalidArgument)));
  }
  // Plain bodies (nearly all) skip the decoding step's extra promise.
  return encoding === "identity" ? readBody(req, limit) : decodeBody(req, limit, encoding);
}

async function decodeBody(req: Req, limit: number, encoding: string): Promise<Buffer> {
  const body = await readBody(req, limit);
  if (body.length === 0) return body;
  try {
    return await (encoding === "gzip" ? gunzip(body, { maxOutputLength: limit }) : brotliDecompress(body, { maxOutputLength: limit }));
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === "ERR_BUFFER_TOO_LARGE") {
      throw new HttpError(413, new ConnectError(`decoded request body is larger than the limit of ${limit} bytes`, Code.ResourceExhausted));
    }
    throw new HttpError(400, new ConnectError(`request body is not valid ${encoding}`, Code.InvalidArgument));
  }
}

/**
 * Cuts a client's requested timeout to `capMs` before connect-node reads it: connect-node would
 * otherwise refuse larger values (maxTimeoutMs) or, past 2^31 ms, fire its timer at once.
 */
function clampTimeouts(h: Headers, capMs: number): void {
  const connect = h.get("connect-timeout-ms");
  if (connect !== null && /^\d{1,10}$/.test(connect) && Number(connect) > capMs) h.set("connect-timeout-ms", String(capMs));
  const grpc = h.get("grpc-timeout");
  const m = grpc === null ? null : /^(\d{1,8})([HMSmun])$/.exec(grpc);
  if (m) {
    const unitMs: Record<string, number> = { H: 3_600_000, M: 60_000, S: 1_000, m: 1, u: 1e-3, n: 1e-6 };
    if (Number(m[1]) * unitMs[m[2]] > capMs) h.set("grpc-timeout", `${capMs}m`);
  }
}

function hasBody(req: Req): boolean {
  const cl = req.headers["content-length"];
  if (cl !== undefined) return cl !== "0";
  if (req.headers["transfer-encoding"] !== undefined) return true;
  // HTTP/2 bodies need no length header; GET and DELETE carry none worth reading.
  return req.httpVersionMajor === 2 && req.method !== "GET" && req.method !== "DELETE";
}

function methodNotAllowed(method: string | undefined, path: string, allow: readonly string[]): HttpError {
  return new HttpError(405, new ConnectError(`HTTP method ${String(method).slice(0, 16)} is not allowed for ${path.slice(0, 200)}; allowed: ${allow.join(", ")}`, Code.Unimplemented), {
    allow: allow.join(", "),
  });
}

function parseJson(body: Buffer): JsonValue {
  try {
    return JSON.parse(body.toString("utf8")) as JsonValue;
  } catch (e) {
    throw new HttpError(400, new ConnectError(`invalid JSON body: ${(e as Error).message.slice(0, 200)}`, Code.InvalidArgument));
  }
}

function parseJsonMessage(route: GatewayMethod, body: Buffer): Message {
  let json: JsonValue;
  try {
    json = JSON.parse(body.toString("utf8")) as JsonValue;
  } catch (e) {
    throw new ConnectError(`cannot decode ${route.method.input.typeName} from JSON: ${(e as Error).message.slice(0, 200)}`, Code.InvalidArgument);
  }
  return messageFromJson(route, json);
}

function messageFromJson(route: GatewayMethod, json: JsonValue): Message {
  try {
    return messageFromJsonValue(route.method.input, json);
  } catch (e) {
    throw new ConnectError(`cannot decode ${route.method.input.typeName} from JSON: ${(e as Error).message.slice(0, 300)}`, Code.InvalidArgument);
  }
}

/** Reads the whole request body, refusing more than `limit` bytes with 413 before buffering them. */
function readBody(req: Req, limit: number): Promise<Buffer> {
  return new Promise((resolve, reject) => readBodyInto(req, limit, { body: resolve, error: reject }));
}

/** Where a body being read ends up: its bytes, or why it could not be read. */
interface BodySink {
  body(b: Buffer): void;
  error(e: unknown): void;
}

/** {@link readBody} without a promise: `sink` is told once, possibly before this returns. */
function readBodyInto(req: Req, limit: number, sink: BodySink): void {
  const cl = Number(req.headers["content-length"]);
  if (cl > limit) return sink.error(bodyTooLarge(limit));
  const r = req as BodyReq;
  r[BODY] = { chunks: [], size: 0, limit, sink };
  req.on("data", onBodyData);
  req.on("end", onBodyEnd);
  req.on("error", onBodyError);
  req.on("aborted", onBodyError);
}

/** {@link readDecodedBody} without a promise for plain bodies (nearly all). */
function readDecodedBodyInto(req: Req, limit: number, sink: BodySink): void {
  const encoding = header(req, "content-encoding");
  if (encoding === undefined || encoding === "identity") return readBodyInto(req, limit, sink);
  readDecodedBody(req, limit).then(
    (b) => sink.body(b),
    (e: unknown) => sink.error(e),
  );
}

const BODY = Symbol("meshwork.body");
/** A body being read; the listeners below find it on the request (shared functions, no closures per request). */
interface BodyState {
  chunks: Buffer[];
  size: number;
  limit: number;
  sink: BodySink;
}
type BodyReq = Req & { [BODY]?: BodyState };

function bodyTooLarge(limit: number): HttpError {
  return new HttpError(413, new ConnectError(`request body is larger than the limit of ${limit} bytes`, Code.ResourceExhausted));
}

function stopReading(req: BodyReq): BodyState {
  const b = req[BODY]!;
  req[BODY] = undefined;
  req.off("data", onBodyData);
  req.off("end", onBodyEnd);
  req.off("error", onBodyError);
  req.off("aborted", onBodyError);
  return b;
}

function onBodyData(this: BodyReq, c: Buffer): void {
  const b = this[BODY]!;
  b.size += c.length;
  if (b.size > b.limit) {
    stopReading(this);
    this.pause();
    b.sink.error(bodyTooLarge(b.limit));
    return;
  }
  b.chunks.push(c);
}

function onBodyEnd(this: BodyReq): void {
  const b = stopReading(this);
  b.sink.body(b.chunks.length === 1 ? b.chunks[0] : Buffer.concat(b.chunks, b.size));
}

function onBodyError(this: BodyReq): void {
  stopReading(this).sink.error(new ConnectError("request body was not received completely", Code.Canceled));
}

const SOCKET_ABORT = Symbol("meshwork.socketAbort");
type AbortableSocket = net.Socket & { [SOCKET_ABORT]?: AbortController };

function abortSocket(this: AbortableSocket): void {
  this[SOCKET_ABORT]!.abort(new ConnectError("client went away", Code.Canceled));
}

/**
 * The signal of a unary call: aborted when the client goes away before the answer. On HTTP/1.1
 * that means the connection closing, which ends every call on it (pipelined ones too), so the
 * connection's signal, made once, serves all of them: a controller and a close listener per
 * request cost more than the rest of the admission. The mesh client removes its abort listener
 * when a call ends, so nothing accumulates on a keep-alive connection. HTTP/2 streams get their own.
 */
function callSignal(req: Req, res: Res): AbortSignal {
  const socket = req.httpVersionMajor === 1 ? (req.socket as AbortableSocket | null) : null;
  if (!socket) return abortOnClose(res);
  let ac = socket[SOCKET_ABORT];
  if (!ac) {
    ac = socket[SOCKET_ABORT] = new AbortController();
    // Abort listeners are per call and removed when it ends; many pipelined calls are not a leak.
    setMaxListeners(0, ac.signal);
    if (socket.destroyed) abortSocket.call(socket);
    else socket.once("close", abortSocket);
  }
  return ac.signal;
}

function abortOnClose(res: Res): AbortSignal {
  const ac = new AbortController();
  res.once("close", () => {
    if (!res.writableFinished) ac.abort(new ConnectError("client went away", Code.Canceled));
  });
  return ac.signal;
}

function drained(res: Res, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const done = () => {
      res.off("drain", done);
      signal.removeEventListener("abort", done);
      resolve();
    };
    res.on("drain", done);
    signal.addEventListener("abort", done, { once: true });
  });
}

async function* oneChunk(body: Buffer): AsyncIterable<Uint8Array> {
  yield body;
}

function sendJson(res: Res, status: number, body: string): void {
  res.writeHead(status, { "content-type": "application/json", "content-length": Buffer.byteLength(body) });
  res.end(body);
}

function sendJsonError(res: Res, err: ConnectError): void {
  const r = jsonErrorResponse(err);
  if (res.headersSent) return void res.destroy();
  res.writeHead(r.status, { ...r.headers, "content-length": Buffer.byteLength(r.body) });
  res.end(r.body);
}

function sendError(res: Res, status: number, err: ConnectError, headers: Record<string, string>): void {
  if (res.headersSent) return void res.destroy();
  const r = jsonErrorResponse(err);
  // An unread request body would be parsed as the next request: close HTTP/1.1 connections.
  if (status === 413 && res.req?.httpVersionMajor === 1) res.setHeader("connection", "close");
  res.writeHead(status, { ...r.headers, ...headers, "content-length": Buffer.byteLength(r.body) });
  res.end(r.body);
}

function sendGrpcError(res: Res, err: ConnectError, contentType: string): void {
  res.writeHead(200, grpcErrorHeaders(err, contentType.startsWith("application/grpc-web")));
  res.end();
}
