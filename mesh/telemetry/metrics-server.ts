import { Code, ConnectError } from "@connectrpc/connect";
import { createServer, type IncomingMessage, type ServerResponse } from "node:http";
import type { Socket } from "node:net";
import { rollingStats } from "./metrics.js";
import { WINDOW_MINUTES } from "./rolling-stats.js";
import type { Telemetry } from "./telemetry.js";

/** Options for {@link startMetricsServer}. */
export interface MetricsServerOptions {
  telemetry: Telemetry;
  /** Default MESHWORK_METRICS_PORT, else 0 (a free port; publish it in the registry entry). */
  port?: number;
  /** Interface to listen on; default 127.0.0.1. */
  host?: string;
}

/** A listening metrics server. */
export interface MetricsServer {
  host: string;
  port: number;
  /** "host:port", for the registry entry's metadata. */
  address: string;
  /** e.g. "http://127.0.0.1:9464/metrics". */
  url: string;
  close(): Promise<void>;
}

// Summaries default to 5 minutes: long enough for a stable p99 at a few req/s, short enough to
// show a fault within the minute it starts.
const DEFAULT_SUMMARY_MINUTES = 5;
// Prometheus text format 0.0.4: what every scraper accepts.
const PROMETHEUS_CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8";

function portFromEnv(): number {
  const raw = process.env.MESHWORK_METRICS_PORT?.trim();
  if (!raw) return 0;
  const n = Number(raw);
  if (!Number.isInteger(n) || n < 0 || n > 65535) throw new ConnectError(`MESHWORK_METRICS_PORT must be an integer between 0 and 65535, got '${raw}'`, Code.InvalidArgument);
  return n;
}

function json(res: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { "content-type": "application/json", "content-length": Buffer.byteLength(text), "cache-control": "no-store" });
  res.end(text);
}

function numberParam(url: URL, name: string): number | undefined {
  const raw = url.searchParams.get(name);
  if (raw === null || raw === "") return undefined;
  const n = Number(raw);
  if (!Number.isFinite(n)) throw new ConnectError(`query parameter ${name} must be a number, got '${raw}'`, Code.InvalidArgument);
  return n;
}

/**
 * Serves this process's telemetry over HTTP/1.1 on its own port:
 * - `GET /metrics`: every metric in the Prometheus text format;
 * - `GET /spans?since=<epoch ms>&traceId=<id>&limit=<n>`: recent finished spans (oldest first,
 *   the newest `limit`), with `now` to pass as the next `since`;
 * - `GET /metrics/summary?minutes=<1–10>`: per-method rate, error ratio, p50 and p99 over the last
 *   minutes (default 5).
 * Other paths answer 404, other methods 405. JSON errors carry `{ code, message }`.
 */
export async function startMetricsServer(opts: MetricsServerOptions): Promise<MetricsServer> {
  const { telemetry } = opts;
  const host = opts.host ?? "127.0.0.1";
  const port = opts.port ?? portFromEnv();
  const identity = { service: telemetry.serviceName, instance: telemetry.instanceId };

  const handle = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    const url = new URL(req.url ?? "/", "http://metrics");
    const known = url.pathname === "/metrics" || url.pathname === "/spans" || url.pathname === "/metrics/summary";
    if (!known) return json(res, 404, { code: "not_found", message: `no route ${url.pathname}; try /metrics, /spans, /metrics/summary` });
    if (req.method !== "GET") {
      res.setHeader("allow", "GET");
      return json(res, 405, { code: "method_not_allowed", message: `${req.method} is not allowed; use GET` });
    }
    try {
      if (url.pathname === "/metrics") {
        const text = await telemetry.prometheusText();
        res.writeHead(200, { "content-type": PROMETHEUS_CONTENT_TYPE, "cache-control": "no-store" });
        res.end(text);
        return;
      }
      const now = Date.now();
      if (url.pathname === "/spans") {
        const since = numberParam(url, "since");
        const limit = numberParam(url, "limit");
        if (limit !== undefined && (!Number.isInteger(limit) || limit < 1)) throw new ConnectError(`query parameter limit must be a positive integer, got '${limit}'`, Code.InvalidArgument);
        const traceId = url.searchParams.get("traceId");
        let spans = telemetry.recentSpans(since);
        if (traceId) spans = spans.filter((s) => s.traceId === traceId);
        if (limit !== undefined) spans = spans.slice(-limit);
        return json(res, 200, { ...identity, now, spans });
      }
      const minutes = numberParam(url, "minutes") ?? DEFAULT_SUMMARY_MINUTES;
      if (!Number.isInteger(minutes) || minutes < 1 || minutes > WINDOW_MINUTES) {
        throw new ConnectError(`query parameter minutes must be an integer between 1 and ${WINDOW_MINUTES}, got '${minutes}'`, Code.InvalidArgument);
      }
      return json(res, 200, { ...identity, now, windowMinutes: minutes, series: rollingStats.summary(minutes) });
    } catch (e) {
      const ce = ConnectError.from(e);
      if (ce.code === Code.InvalidArgument) return json(res, 400, { code: "invalid_argument", message: ce.rawMessage });
      return json(res, 500, { code: "internal", message: ce.rawMessage });
    }
  };

  const sockets = new Set<Socket>();
  const server = createServer((req, res) => {
    handle(req, res).catch(() => res.destroy());
  });
  server.on("connection", (s) => {
    sockets.add(s);
    s.once("close", () => sockets.delete(s));
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(port, host, () => {
      server.off("error", reject);
      resolve();
    });
  });
  const bound = (server.address() as { port: number }).port;
  const hostPart = host.includes(":") ? `[${host}]` : host;
  let closing: Promise<void> | undefined;
  return {
    host,
    port: bound,
    address: `${hostPart}:${bound}`,
    url: `http://${hostPart}:${bound}/metrics`,
    close() {
      return (closing ??= new Promise<void>((resolve) => {
        server.close(() => resolve());
        // Scrapers keep connections alive; do not wait for them.
        for (const s of sockets) s.destroy();
      }));
    },
  };
}
