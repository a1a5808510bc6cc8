import { context, propagation, ROOT_CONTEXT, SpanKind, SpanStatusCode, trace, type TextMapGetter } from "@opentelemetry/api";
import type { IncomingHttpHeaders, IncomingMessage, ServerResponse } from "node:http";
import type { Http2ServerRequest, Http2ServerResponse } from "node:http2";
import { logAccess, type Logger } from "./logging.js";
import { meshMetrics } from "./metrics.js";
import { tracer } from "./rpc-tracing.js";

/** Options for {@link traceHttpRequests}. */
export interface HttpTracingOptions {
  /** Writes one access-log line per request when given. */
  logger?: Logger;
  /**
   * The route of a request from a bounded set (e.g. "/catalog.v1.CatalogService/GetProduct" or
   * "/v1/products/{id}"), for the span name and metric labels; undefined = "unmatched". Never the
   * raw path: ids and fuzzed URLs would explode the series count.
   */
  route?: (req: IncomingMessage | Http2ServerRequest) => string | undefined;
}

const nodeHeadersGetter: TextMapGetter<IncomingHttpHeaders> = {
  get: (h, key) => h[key],
  keys: (h) => Object.keys(h),
};

// Accept a caller's request id only if it is short and plain: it is echoed and logged.
const SAFE_REQUEST_ID = /^[A-Za-z0-9._:-]{1,128}$/;

type Req = IncomingMessage | Http2ServerRequest;
type Res = ServerResponse | Http2ServerResponse;

/**
 * Wraps a node:http / node:http2 request listener (the gateway's Connect adapter) with a SERVER
 * span per request (continuing an incoming `traceparent`), the `x-request-id` response header (the
 * caller's if safe, else the trace id), `http_server_requests_total` /
 * `http_server_duration_seconds`, and an access-log line. The handler runs inside the span, so
 * the mesh calls it makes are child spans and its log lines carry the trace id. A response closed
 * before it was sent counts as 499 (client gone).
 */
export function traceHttpRequests<Q extends Req, S extends Res>(handler: (req: Q, res: S) => void, opts: HttpTracingOptions = {}): (req: Q, res: S) => void {
  return (req, res) => {
    const started = performance.now();
    const method = req.method ?? "GET";
    const path = (req.url ?? "/").split("?")[0];
    const route = opts.route?.(req);
    const parent = propagation.extract(ROOT_CONTEXT, req.headers, nodeHeadersGetter);
    const span = tracer().startSpan(route ? `${method} ${route}` : method, {
      kind: SpanKind.SERVER,
      attributes: { "http.request.method": method, "url.path": path, ...(route ? { "http.route": route } : {}) },
    }, parent);
    const traceId = span.spanContext().traceId;
    const incoming = req.headers["x-request-id"];
    const requestId = typeof incoming === "string" && SAFE_REQUEST_ID.test(incoming) ? incoming : traceId;
    res.setHeader("x-request-id", requestId);
    let done = false;
    const finish = (sent: boolean) => {
      if (done) return;
      done = true;
      const durationMs = performance.now() - started;
      const status = sent ? res.statusCode : 499;
      span.setAttribute("http.response.status_code", status);
      if (status >= 500) span.setStatus({ code: SpanStatusCode.ERROR });
      span.end();
      meshMetrics.httpRequest(method, route ?? "unmatched", status, durationMs);
      if (opts.logger) logAccess(opts.logger, { method, path, status, durationMs, requestId, traceId });
    };
    // "finish": the response was handed to the OS; "close" first: the connection went away before.
    res.once("finish", () => finish(true));
    res.once("close", () => finish(false));
    context.with(trace.setSpan(parent, span), () => {
      try {
        handler(req, res);
      } catch (e) {
        if (e instanceof Error) span.recordException(e);
        if (!res.headersSent) res.statusCode = 500;
        res.end();
      }
    });
  };
}
