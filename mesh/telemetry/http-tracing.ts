import { context, INVALID_SPAN_CONTEXT, isSpanContextValid, propagation, ROOT_CONTEXT, SpanKind, SpanStatusCode, trace, type Attributes, type Span, type TextMapGetter } from "@opentelemetry/api";
import { randomUUID } from "node:crypto";
import type { IncomingHttpHeaders, IncomingMessage, ServerResponse } from "node:http";
import type { Http2ServerRequest, Http2ServerResponse } from "node:http2";
import type { Logger } from "./logging.js";
import { meshMetrics } from "./metrics.js";
import { ATTR, tracer } from "./rpc-tracing.js";

/** Options for {@link traceHttpRequests}. */
export interface HttpTracingOptions {
  /** Writes one access-log line per request when given. */
  logger?: Logger;
  /**
   * The route of a request from a bounded set (e.g. "/catalog.v1.CatalogService/GetProduct" or
   * "/v1/products/{id}"), for the span name and metric labels; undefined = "unmatched". Never the
   * raw path: ids and fuzzed URLs would explode the series count. A handler that matches routes
   * itself calls {@link HttpRequestTrace.setRoute} instead.
   */
  route?: (req: IncomingMessage | Http2ServerRequest) => string | undefined;
  /** The request id when the caller sent none (or an unsafe one); default the trace id (a UUID when tracing is off). */
  newRequestId?: () => string;
}

/** What the handler may tell the wrapper about its request (the third argument of the handler). */
export interface HttpRequestTrace {
  /** The request id: echoed in `x-request-id`, logged, and meant to be forwarded. */
  readonly requestId: string;
  /** Trace id of the server span; "" when tracing is off. */
  readonly traceId: string;
  /** Names the route once the handler has matched it: span name, `http.route`, metric label, access log. */
  setRoute(route: string, rpc?: { system: string; service: string; method: string }): void;
  /** The authenticated caller: `enduser.id` on the span and `subject` in the access log. */
  setSubject(subject: string): void;
  /** An unexpected failure behind a 5xx: recorded on the span as an exception. */
  recordError(err: unknown): void;
}

const nodeHeadersGetter: TextMapGetter<IncomingHttpHeaders> = {
  get: (h, key) => h[key],
  keys: (h) => Object.keys(h),
};

// Accept a caller's request id only if it is short and plain: it is echoed and logged.
const SAFE_REQUEST_ID = /^[A-Za-z0-9._:-]{1,128}$/;

type Req = IncomingMessage | Http2ServerRequest;
type Res = ServerResponse | Http2ServerResponse;

// The response's trace, reached from the one shared "close" listener (no closure per request).
const TRACE = Symbol("meshwork.httpTrace");

/** Per-request state; one object per request instead of several closures. */
class RequestTrace implements HttpRequestTrace {
  route: string | undefined;
  subject: string | undefined;
  private done = false;

  constructor(
    readonly requestId: string,
    readonly traceId: string,
    private readonly span: Span,
    private readonly method: string,
    private readonly path: string,
    private readonly started: number,
    private readonly res: Res,
    private readonly logger: Logger | undefined,
    private readonly probe: boolean,
  ) {}

  setRoute(route: string, rpc?: { system: string; service: string; method: string }): void {
    this.route = route;
    const span = this.span;
    if (!span.isRecording()) return;
    span.updateName(`${this.method} ${route}`);
    span.setAttribute("http.route", route);
    if (rpc) {
      span.setAttribute(ATTR.rpcSystem, rpc.system);
      span.setAttribute(ATTR.rpcService, rpc.service);
      span.setAttribute(ATTR.rpcMethod, rpc.method);
    }
  }

  setSubject(subject: string): void {
    this.subject = subject;
    this.span.setAttribute("enduser.id", subject);
  }

  recordError(err: unknown): void {
    if (err instanceof Error) this.span.recordException(err);
  }

  /** `sent`: the response was handed to the OS; otherwise the connection went away first (499). */
  finish(sent: boolean): void {
    if (this.done) return;
    this.done = true;
    const durationMs = performance.now() - this.started;
    const status = sent ? this.res.statusCode : 499;
    const route = this.route ?? "unmatched";
    const span = this.span;
    span.setAttribute("http.response.status_code", status);
    if (status >= 500) {
      // HTTP server convention: only 5xx is the server's failure; error.type is the status code.
      span.setAttribute("error.type", String(status));
      span.setStatus({ code: SpanStatusCode.ERROR });
    }
    span.end();
    meshMetrics.httpRequest(this.method, route, status, durationMs);
    const logger = this.logger;
    if (!logger) return;
    // Levels first: at LOG_LEVEL=warn a successful request builds no line at all.
    const level = status >= 500 ? "error" : this.probe ? "debug" : "info";
    if (!logger.isLevelEnabled(level)) return;
    const line: Record<string, string | number> = {
      method: this.method,
      route,
      path: this.path,
      status,
      duration_ms: Math.round(durationMs * 1000) / 1000,
      request_id: this.requestId,
    };
    if (this.traceId) {
      line.trace_id = this.traceId;
      line.span_id = span.spanContext().spanId;
    }
    if (this.subject !== undefined) line.subject = this.subject;
    // 5xx at error level, everything else at info (4xx are the client's problem; a fuzzer must
    // not flood the warn level).
    logger[level](line, "access");
  }
}

/** The one "close" listener of every traced response: "finish" always comes first when the response was sent. */
function onResponseClose(this: Res & { [TRACE]?: RequestTrace }): void {
  this[TRACE]?.finish(this.writableFinished);
}

function runHandler<Q, S>(handler: (req: Q, res: S, trace: HttpRequestTrace) => void, req: Q, res: S & Res, t: RequestTrace): void {
  try {
    handler(req, res, t);
  } catch (e) {
    t.recordError(e);
    if (!res.headersSent) res.statusCode = 500;
    res.end();
  }
}

// Health probes (the console polls every instance, kubelet every few seconds) are not traced and
// log their access line at debug: one trace and one info line per poll would push real requests
// out of every recent-traces view and flood the log. They are still counted in the metrics.
const isProbe = (path: string) => path === "/healthz" || path.startsWith("/grpc.health.v1.Health/");

/**
 * Wraps a node:http / node:http2 request listener (the gateway) with a SERVER span per request
 * following the OpenTelemetry HTTP server conventions (continuing an incoming `traceparent`), the
 * `x-request-id` response header (the caller's if safe, else {@link HttpTracingOptions.newRequestId}),
 * `http_server_requests_total` / `http_server_duration_seconds` by route and status, and one
 * access-log line (`msg: "access"`: method, route, path, status, duration_ms, request_id,
 * trace_id, span_id, subject). The handler runs inside the span, so the mesh calls it makes are
 * child spans and its log lines carry the trace id; its third argument lets it name the route and
 * the caller. A response closed before it was sent counts as 499 (client gone). With a sampler
 * that drops the trace, the span is a no-op but metrics and the access line are still written.
 * Health probes (`/healthz`, `grpc.health.v1.Health`) get no span and an access line at debug.
 */
export function traceHttpRequests<Q extends Req, S extends Res>(
  handler: (req: Q, res: S, trace: HttpRequestTrace) => void,
  opts: HttpTracingOptions = {},
): (req: Q, res: S) => void {
  const logger = opts.logger;
  const newRequestId = opts.newRequestId;
  const routeOf = opts.route;
  return (req, res) => {
    const started = performance.now();
    const method = req.method ?? "GET";
    const url = req.url ?? "/";
    const q = url.indexOf("?");
    const path = q < 0 ? url : url.slice(0, q);
    const headers = req.headers;
    const probe = isProbe(path);
    const parent = headers.traceparent === undefined ? ROOT_CONTEXT : propagation.extract(ROOT_CONTEXT, headers, nodeHeadersGetter);
    let span: Span;
    if (probe) {
      span = trace.wrapSpanContext(INVALID_SPAN_CONTEXT);
    } else {
      // All request attributes at start: one object, and samplers see them too.
      const attributes: Attributes = {
        "http.request.method": method,
        "url.path": path,
        "url.scheme": "http",
        "network.protocol.version": req.httpVersionMajor === 2 ? "2" : "1.1",
        "client.address": req.socket?.remoteAddress ?? "",
      };
      const ua = headers["user-agent"];
      if (ua !== undefined) attributes["user_agent.original"] = ua;
      span = tracer().startSpan(method, { kind: SpanKind.SERVER, attributes }, parent);
    }
    const sc = span.spanContext();
    const traceId = isSpanContextValid(sc) ? sc.traceId : "";
    const incoming = headers["x-request-id"];
    const requestId = typeof incoming === "string" && SAFE_REQUEST_ID.test(incoming) ? incoming : newRequestId !== undefined ? newRequestId() : traceId || randomUUID();
    res.setHeader("x-request-id", requestId);
    const t = new RequestTrace(requestId, traceId, span, method, path, started, res, logger, probe);
    if (routeOf !== undefined) {
      const route = routeOf(req);
      if (route !== undefined) t.setRoute(route);
    }
    // "close" follows "finish" when the response was handed to the OS (writableFinished), and
    // comes alone when the connection went away before.
    (res as S & { [TRACE]?: RequestTrace })[TRACE] = t;
    res.on("close", onResponseClose);
    context.with(trace.setSpan(parent, span), runHandler<Q, S>, undefined, handler, req, res, t);
  };
}
