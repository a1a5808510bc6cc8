/**
 * The console's HTTP server: the page (static files, no build step), the JSON API over the live
 * {@link MeshModel}, and Server-Sent Events that push the state after every poll.
 *
 * - `GET /api/state` → {@link ConsoleState}
 * - `GET /api/traces` → `{ traces: TraceSummary[] }`, newest first
 * - `GET /api/traces/:id` → {@link TraceDetail} (spans of every instance + waterfall), 404 when unknown
 * - `GET /api/events` → `text/event-stream`: `state` and `traces` events, at once and after each update
 */
import { readFileSync } from "node:fs";
import { createServer, type IncomingMessage, type ServerResponse } from "node:http";
import type { Socket } from "node:net";
import { join } from "node:path";
import { MeshModel, type MeshModelOptions } from "./model.js";

/** Options of {@link build}: those of the model. */
export type ConsoleOptions = MeshModelOptions;

/** An unstarted console; `listen` starts the model and the HTTP server. */
export interface ConsoleServer {
  readonly model: MeshModel;
  /** Starts watching and polling, binds `host:port` (port 0 = a free one; host default 127.0.0.1) and resolves with the port. */
  listen(port: number, host?: string): Promise<number>;
  /** Ends the event streams, closes the server and stops the model. Idempotent. */
  close(): Promise<void>;
}

// A console has a handful of viewers; 64 streams bounds what a misbehaving client (or many open
// tabs) can hold open.
const MAX_EVENT_STREAMS = 64;
// A viewer that has not read 1 MiB of queued events (dozens of states) is stuck: drop it.
const MAX_QUEUED_EVENT_BYTES = 1024 * 1024;
// Trace ids are 16 bytes in hex (W3C trace context).
const TRACE_ID = /^[0-9a-f]{32}$/;

const STATIC_FILES: Record<string, { file: string; type: string }> = {
  "/": { file: "index.html", type: "text/html; charset=utf-8" },
  "/index.html": { file: "index.html", type: "text/html; charset=utf-8" },
  "/console.js": { file: "console.js", type: "text/javascript; charset=utf-8" },
  "/console.css": { file: "console.css", type: "text/css; charset=utf-8" },
};

// Everything is served from here: no inline code, no third-party origin.
const SECURITY_HEADERS = {
  "content-security-policy": "default-src 'self'; img-src 'self' data:; object-src 'none'; base-uri 'none'; frame-ancestors 'none'",
  "x-content-type-options": "nosniff",
  "referrer-policy": "no-referrer",
};

function json(res: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { ...SECURITY_HEADERS, "content-type": "application/json; charset=utf-8", "content-length": Buffer.byteLength(text), "cache-control": "no-store" });
  res.end(text);
}

/** Builds the console server over a new {@link MeshModel}; nothing runs until `listen`. */
export function build(opts: ConsoleOptions): ConsoleServer {
  const model = new MeshModel(opts);
  const staticDir = join(__dirname, "static");
  const cache = new Map<string, Buffer>();
  const streams = new Set<ServerResponse>();
  const sockets = new Set<Socket>();

  const event = (name: string, data: unknown) => `event: ${name}\ndata: ${JSON.stringify(data)}\n\n`;
  const send = (res: ServerResponse, chunk: string) => {
    if (res.writableLength > MAX_QUEUED_EVENT_BYTES) {
      streams.delete(res);
      res.destroy();
      return;
    }
    res.write(chunk);
  };
  const broadcast = () => {
    if (streams.size === 0) return;
    const chunk = event("state", model.state()) + event("traces", { traces: model.traces() });
    for (const res of streams) send(res, chunk);
  };
  model.on("update", broadcast);

  const openStream = (req: IncomingMessage, res: ServerResponse) => {
    if (streams.size >= MAX_EVENT_STREAMS) return json(res, 503, { code: "unavailable", message: `at most ${MAX_EVENT_STREAMS} event streams are served at once` });
    res.writeHead(200, { ...SECURITY_HEADERS, "content-type": "text/event-stream; charset=utf-8", "cache-control": "no-store", connection: "keep-alive" });
    // The browser reconnects after a poll interval when the stream breaks.
    res.write(`retry: ${model.pollIntervalMs}\n\n`);
    streams.add(res);
    req.on("close", () => streams.delete(res));
    send(res, event("state", model.state()) + event("traces", { traces: model.traces() }));
  };

  const handle = (req: IncomingMessage, res: ServerResponse) => {
    const url = new URL(req.url ?? "/", "http://console");
    const path = url.pathname;
    const known = path in STATIC_FILES || path.startsWith("/api/");
    if (!known) return json(res, 404, { code: "not_found", message: `no route ${path}` });
    if (req.method !== "GET" && req.method !== "HEAD") {
      res.setHeader("allow", "GET, HEAD");
      return json(res, 405, { code: "method_not_allowed", message: `${req.method} is not allowed; use GET` });
    }
    const asset = STATIC_FILES[path];
    if (asset) {
      let body = cache.get(asset.file);
      if (!body) {
        body = readFileSync(join(staticDir, asset.file));
        cache.set(asset.file, body);
      }
      res.writeHead(200, { ...SECURITY_HEADERS, "content-type": asset.type, "content-length": body.length, "cache-control": "no-cache" });
      res.end(req.method === "HEAD" ? undefined : body);
      return;
    }
    if (path === "/api/state") return json(res, 200, model.state());
    if (path === "/api/traces") return json(res, 200, { traces: model.traces() });
    if (path === "/api/events") return openStream(req, res);
    const m = /^\/api\/traces\/([^/]+)$/.exec(path);
    if (m) {
      const id = decodeURIComponent(m[1]).toLowerCase();
      if (!TRACE_ID.test(id)) return json(res, 400, { code: "invalid_argument", message: `trace id must be 32 hex digits, got '${m[1]}'` });
      const trace = model.trace(id);
      return trace ? json(res, 200, trace) : json(res, 404, { code: "not_found", message: `trace ${id} is not among the ${model.traces().length} recent traces` });
    }
    return json(res, 404, { code: "not_found", message: `no route ${path}` });
  };

  const server = createServer((req, res) => {
    try {
      handle(req, res);
    } catch (e) {
      json(res, 500, { code: "internal", message: e instanceof Error ? e.message : String(e) });
    }
  });
  server.on("connection", (s) => {
    sockets.add(s);
    s.once("close", () => sockets.delete(s));
  });

  let closing: Promise<void> | undefined;
  return {
    model,
    async listen(port, host = "127.0.0.1") {
      await model.start();
      await new Promise<void>((resolve, reject) => {
        server.once("error", reject);
        server.listen(port, host, () => {
          server.off("error", reject);
          resolve();
        });
      });
      return (server.address() as { port: number }).port;
    },
    close() {
      return (closing ??= (async () => {
        for (const res of streams) res.end();
        streams.clear();
        const closed = new Promise<void>((resolve) => server.close(() => resolve()));
        // Browsers keep connections alive; do not wait for them.
        for (const s of sockets) s.destroy();
        await closed;
        await model.close();
      })());
    },
  };
}
