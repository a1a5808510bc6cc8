/**
 * The console's live model of the mesh: instances from a registry watch, and per instance, every
 * poll, its health (grpc.health.v1 Check), its `/metrics/summary`, the gauges of its `/metrics`
 * and its new spans (merged into recent traces).
 */
import { Code, ConnectError, createClient, type Client } from "@connectrpc/connect";
import type { Etcd3 } from "etcd3";
import { EventEmitter } from "node:events";
import { Agent, request } from "node:http";
import { Health, HealthCheckResponse_ServingStatus } from "../gen/grpc/health/v1/health_pb.js";
import { createMeshTransport, staticEndpoints, type MeshTransport } from "../mesh/client/index.js";
import type { InstanceInfo } from "../mesh/registry/index.js";
import type { SummaryEntry } from "../mesh/telemetry/rolling-stats.js";
import type { SpanRecord } from "../mesh/telemetry/span-ring.js";
import { clientStats, combineStats, History, methodStats, servedEntries, type HistoryPoint, type MethodStats, type Stats } from "./aggregate.js";
import { instanceGauges, parsePrometheusText, type ClientTargetGauges, type InstanceGauges } from "./prometheus.js";
import { watchRegistry, type PrefixWatcher } from "../mesh/discovery/index.js";
import { DEFAULT_MAX_TRACES, summarizeTrace, TraceStore, type TraceSummary } from "./traces.js";
import { layoutWaterfall, type Waterfall } from "./waterfall.js";

/** Options of {@link MeshModel}. */
export interface MeshModelOptions {
  /** The caller's etcd client (closed by the caller, after the model). */
  etcd: Etcd3;
  /** Time between polls of every instance. */
  pollIntervalMs: number;
  /** Shown in the page header. Default "meshwork". */
  meshName?: string;
  /** Window of the rate / error / latency figures, 1–10 minutes (mesh/telemetry keeps 10). Default 2. */
  windowMinutes?: number;
  /** How far back the sparklines go. Default 5 minutes. */
  historyMinutes?: number;
  /** Recent traces kept. Default {@link DEFAULT_MAX_TRACES}. */
  maxTraces?: number;
  /** Bound on each health check and HTTP request to an instance. Default min(1 000, pollIntervalMs). */
  requestTimeoutMs?: number;
}

/** grpc.health.v1 status names, plus UNKNOWN when the check itself failed. */
export type HealthStatus = "SERVING" | "NOT_SERVING" | "UNKNOWN" | "SERVICE_UNKNOWN";

/** A client target as one instance sees it: its gauges plus the calls it made there. */
export interface ClientView extends ClientTargetGauges {
  stats: Stats | null;
}

/** One instance in {@link ConsoleState}. */
export interface InstanceView {
  service: string;
  instance: string;
  address: string;
  port: number;
  version: string;
  zone?: string;
  startedAt: string;
  /** `metadata.metrics`; null when the instance publishes no metrics address. */
  metricsAddress: string | null;
  health: HealthStatus;
  /** Why the last check failed, when it did. */
  healthError?: string;
  /** Epoch ms of the last finished health check; null before the first. */
  checkedAt: number | null;
  /** Why the last scrape of the metrics address failed, when it did. */
  scrapeError?: string;
  outboxBacklog: number | null;
  dlqMessages: number | null;
  clients: ClientView[];
  /** The instance's served calls over the window. */
  stats: Stats | null;
}

/** One service in {@link ConsoleState}. */
export interface ServiceView {
  name: string;
  instances: InstanceView[];
  /** Served calls of all instances over the window; null when idle. */
  stats: Stats | null;
  methods: MethodStats[];
  /** One point per poll, oldest first. */
  history: HistoryPoint[];
}

/** What `GET /api/state` returns. */
export interface ConsoleState {
  mesh: string;
  /** Epoch ms of the last poll (or registry change). */
  updatedAt: number;
  pollIntervalMs: number;
  windowMinutes: number;
  historyMinutes: number;
  services: ServiceView[];
}

/** What `GET /api/traces/:id` returns. */
export interface TraceDetail extends TraceSummary {
  spans: SpanRecord[];
  waterfall: Waterfall;
}

/** Events of a {@link MeshModel}. */
export interface MeshModelEvents {
  /** The state changed (after a poll or a registry change). */
  update: [];
}

interface InstanceRuntime {
  info: InstanceInfo;
  transport: MeshTransport;
  health: Client<typeof Health>;
  status: HealthStatus;
  healthError?: string;
  checkedAt: number | null;
  scrapeError?: string;
  summary: SummaryEntry[];
  gauges: InstanceGauges | null;
  /** Cursor for `/spans?since=`: the instance's `now` of the previous answer. */
  spansSince?: number;
}

// Spans asked for per instance and poll: a busy instance ends ~1,000 spans in 2 s at 500 req/s;
// the console shows 50 traces, so the newest 500 are plenty and bound each answer to ~1 MB.
const SPANS_PER_POLL = 500;
// Largest answer read from an instance: /metrics of a service is tens of KiB, 500 spans ~1 MB.
const MAX_RESPONSE_BYTES = 8 * 1024 * 1024;
// A dead service stays listed (with no instances) for the sparkline window, then goes.
const DEFAULT_HISTORY_MINUTES = 5;
// Two of mesh/telemetry's calendar-minute buckets (the current, partial one included): 60–120 s
// of calls. One bucket would empty every figure at each minute boundary; two still show a fault
// within a poll or two while averaging over many calls.
const DEFAULT_WINDOW_MINUTES = 2;
// A healthy instance answers in milliseconds; 1 s bounds a hung one so a poll stays within the
// 2 s interval.
const DEFAULT_REQUEST_TIMEOUT_MS = 1_000;

const STATUS_NAMES: Record<number, HealthStatus> = {
  [HealthCheckResponse_ServingStatus.UNKNOWN]: "UNKNOWN",
  [HealthCheckResponse_ServingStatus.SERVING]: "SERVING",
  [HealthCheckResponse_ServingStatus.NOT_SERVING]: "NOT_SERVING",
  [HealthCheckResponse_ServingStatus.SERVICE_UNKNOWN]: "SERVICE_UNKNOWN",
};

const keyOf = (i: InstanceInfo) => `${i.service}/${i.instance}`;
const hostPort = (host: string, port: number) => (host.includes(":") ? `[${host}]:${port}` : `${host}:${port}`);
const message = (e: unknown) => (e instanceof Error ? e.message : String(e));

/**
 * Watches the registry and polls every instance; read it with {@link state}, {@link traces} and
 * {@link trace}, and listen to `update`. Call {@link start} once and {@link close} at the end.
 */
export class MeshModel extends EventEmitter<MeshModelEvents> {
  readonly meshName: string;
  readonly pollIntervalMs: number;
  readonly windowMinutes: number;
  readonly historyMinutes: number;
  private readonly requestTimeoutMs: number;
  private readonly historyCapacity: number;
  private readonly instances = new Map<string, InstanceRuntime>();
  private readonly histories = new Map<string, { history: History; lastSeen: number }>();
  private readonly store: TraceStore;
  // Keep-alive to the instances' metrics servers, owned here so close() can drop the sockets.
  private readonly agent = new Agent({ keepAlive: true, maxSockets: 4 });
  private watch: PrefixWatcher<InstanceInfo> | undefined;
  private timer: NodeJS.Timeout | undefined;
  private polling: Promise<void> | undefined;
  private closed = false;
  private updatedAt = Date.now();
  private snapshot: ConsoleState | undefined;

  constructor(private readonly opts: MeshModelOptions) {
    super();
    // Below 100 ms each instance would answer the console more often than a scraper ever asks.
    if (!Number.isInteger(opts.pollIntervalMs) || opts.pollIntervalMs < 100) throw new ConnectError(`pollIntervalMs must be an integer ≥ 100, got ${opts.pollIntervalMs}`, Code.InvalidArgument);
    this.meshName = opts.meshName ?? "meshwork";
    this.pollIntervalMs = opts.pollIntervalMs;
    this.windowMinutes = opts.windowMinutes ?? DEFAULT_WINDOW_MINUTES;
    if (!Number.isInteger(this.windowMinutes) || this.windowMinutes < 1 || this.windowMinutes > 10) throw new ConnectError(`windowMinutes must be an integer between 1 and 10, got ${this.windowMinutes}`, Code.InvalidArgument);
    this.historyMinutes = opts.historyMinutes ?? DEFAULT_HISTORY_MINUTES;
    this.historyCapacity = Math.max(1, Math.ceil((this.historyMinutes * 60_000) / this.pollIntervalMs));
    this.requestTimeoutMs = opts.requestTimeoutMs ?? Math.min(DEFAULT_REQUEST_TIMEOUT_MS, this.pollIntervalMs);
    this.store = new TraceStore(opts.maxTraces ?? DEFAULT_MAX_TRACES);
  }

  /** Starts the registry watch and the poll loop; resolves after the first registry read. */
  async start(): Promise<void> {
    if (this.watch || this.closed) return;
    const watch = watchRegistry(this.opts.etcd);
    this.watch = watch;
    watch.on("change", (list) => this.onRegistry(list));
    try {
      await watch.ready();
    } catch (e) {
      // Closed before the first read: nothing to start.
      if (this.closed) return;
      throw e;
    }
    this.onRegistry(watch.values());
    this.schedule(0);
  }

  /** Stops polling, drops the watch and every connection to the instances. */
  async close(): Promise<void> {
    this.closed = true;
    clearTimeout(this.timer);
    await this.polling;
    await this.watch?.close();
    for (const rt of this.instances.values()) rt.transport.close();
    this.instances.clear();
    this.agent.destroy();
    this.removeAllListeners();
  }

  /** The current state (what `GET /api/state` serves). */
  state(): ConsoleState {
    return (this.snapshot ??= this.buildState());
  }

  /** Recent traces, newest first. */
  traces(): TraceSummary[] {
    return this.store.list();
  }

  /** All spans of one trace with its waterfall; undefined when not among the recent traces. */
  trace(traceId: string): TraceDetail | undefined {
    const spans = this.store.get(traceId);
    if (!spans) return undefined;
    return { ...summarizeTrace(traceId, spans), spans, waterfall: layoutWaterfall(traceId, spans) };
  }

  private schedule(delayMs: number): void {
    if (this.closed) return;
    this.timer = setTimeout(() => {
      const started = Date.now();
      this.polling = this.pollAll()
        .catch(() => undefined)
        .finally(() => {
          this.polling = undefined;
          // Fixed rate when polls are quick; back to back (never overlapping) when they are slow.
          this.schedule(Math.max(0, this.pollIntervalMs - (Date.now() - started)));
        });
    }, delayMs);
  }

  private onRegistry(list: InstanceInfo[]): void {
    if (this.closed) return;
    const seen = new Set<string>();
    for (const info of list) {
      const key = keyOf(info);
      seen.add(key);
      const rt = this.instances.get(key);
      if (rt && rt.info.address === info.address && rt.info.port === info.port) {
        rt.info = info;
        continue;
      }
      // New, or the same id at a new address (a restart): a fresh connection and span cursor.
      rt?.transport.close();
      const transport = createMeshTransport({ endpoints: staticEndpoints(hostPort(info.address, info.port)), serviceName: info.service });
      this.instances.set(key, { info, transport, health: createClient(Health, transport), status: "UNKNOWN", checkedAt: null, summary: [], gauges: null });
    }
    for (const [key, rt] of this.instances) {
      if (seen.has(key)) continue;
      rt.transport.close();
      this.instances.delete(key);
    }
    this.publish(Date.now());
  }

  private async pollAll(): Promise<void> {
    const list = [...this.instances.values()];
    await Promise.all(list.map((rt) => this.pollInstance(rt)));
    if (this.closed) return;
    const now = Date.now();
    const state = this.buildState(now);
    for (const s of state.services) {
      const h = this.histories.get(s.name)!;
      h.history.push(now, s.stats);
      s.history = h.history.toJSON();
    }
    this.snapshot = state;
    this.updatedAt = now;
    this.emit("update");
  }

  private async pollInstance(rt: InstanceRuntime): Promise<void> {
    const health = rt.health
      .check({ service: "" }, { timeoutMs: this.requestTimeoutMs })
      .then((r) => {
        rt.status = STATUS_NAMES[r.status] ?? "UNKNOWN";
        rt.healthError = undefined;
      })
      .catch((e: unknown) => {
        rt.status = "UNKNOWN";
        rt.healthError = message(e);
      })
      .finally(() => (rt.checkedAt = Date.now()));
    await Promise.all([health, this.scrape(rt)]);
  }

  private async scrape(rt: InstanceRuntime): Promise<void> {
    const address = rt.info.metadata.metrics;
    if (!address) {
      rt.scrapeError = undefined;
      return;
    }
    const base = `http://${address}`;
    const since = rt.spansSince !== undefined ? `&since=${rt.spansSince}` : "";
    const [summary, metrics, spans] = await Promise.allSettled([
      this.get(`${base}/metrics/summary?minutes=${this.windowMinutes}`).then((t) => JSON.parse(t) as { series: SummaryEntry[] }),
      this.get(`${base}/metrics`),
      this.get(`${base}/spans?limit=${SPANS_PER_POLL}${since}`).then((t) => JSON.parse(t) as { now: number; spans: SpanRecord[] }),
    ]);
    const errors: string[] = [];
    if (summary.status === "fulfilled" && Array.isArray(summary.value.series)) rt.summary = summary.value.series;
    else {
      rt.summary = [];
      errors.push(`summary: ${summary.status === "rejected" ? message(summary.reason) : "no series"}`);
    }
    if (metrics.status === "fulfilled") rt.gauges = instanceGauges(parsePrometheusText(metrics.value));
    else {
      rt.gauges = null;
      errors.push(`metrics: ${message(metrics.reason)}`);
    }
    if (spans.status === "fulfilled" && Array.isArray(spans.value.spans)) {
      this.store.add(spans.value.spans);
      if (typeof spans.value.now === "number") rt.spansSince = spans.value.now;
    } else errors.push(`spans: ${spans.status === "rejected" ? message(spans.reason) : "no spans"}`);
    rt.scrapeError = errors.length ? errors.join("; ") : undefined;
  }

  /** GET `url` → body text; rejects on non-200, timeout or an oversized answer. */
  private get(url: string): Promise<string> {
    return new Promise((resolve, reject) => {
      const signal = AbortSignal.timeout(this.requestTimeoutMs);
      const req = request(url, { agent: this.agent, signal }, (res) => {
        const chunks: Buffer[] = [];
        let size = 0;
        res.on("data", (c: Buffer) => {
          size += c.length;
          if (size > MAX_RESPONSE_BYTES) req.destroy(new Error(`answer larger than ${MAX_RESPONSE_BYTES} bytes`));
          else chunks.push(c);
        });
        res.on("end", () => {
          if (res.statusCode !== 200) reject(new Error(`HTTP ${res.statusCode}`));
          else resolve(Buffer.concat(chunks).toString("utf8"));
        });
        res.on("error", reject);
      });
      req.on("error", (e) => reject(signal.aborted ? new Error(`no answer within ${this.requestTimeoutMs} ms`) : e));
      req.end();
    });
  }

  /** Publishes a registry change at once, without waiting for the next poll. */
  private publish(now: number): void {
    const state = this.buildState(now);
    for (const s of state.services) s.history = this.histories.get(s.name)!.history.toJSON();
    this.snapshot = state;
    this.updatedAt = now;
    this.emit("update");
  }

  private buildState(now = this.updatedAt): ConsoleState {
    const byService = new Map<string, InstanceRuntime[]>();
    for (const rt of this.instances.values()) {
      const list = byService.get(rt.info.service) ?? [];
      list.push(rt);
      byService.set(rt.info.service, list);
    }
    for (const name of byService.keys()) {
      const h = this.histories.get(name);
      if (h) h.lastSeen = now;
      else this.histories.set(name, { history: new History(this.historyCapacity), lastSeen: now });
    }
    for (const [name, h] of this.histories) {
      if (byService.has(name)) continue;
      if (now - h.lastSeen > this.historyMinutes * 60_000) this.histories.delete(name);
      else byService.set(name, []);
    }
    const services: ServiceView[] = [...byService]
      .sort(([a], [b]) => a.localeCompare(b))
      .map(([name, rts]) => {
        const entries = rts.flatMap((rt) => rt.summary);
        return {
          name,
          instances: rts.sort((a, b) => a.info.instance.localeCompare(b.info.instance)).map((rt) => this.instanceView(rt)),
          stats: combineStats(servedEntries(entries)),
          methods: methodStats(entries),
          history: this.histories.get(name)?.history.toJSON() ?? [],
        };
      });
    return { mesh: this.meshName, updatedAt: now, pollIntervalMs: this.pollIntervalMs, windowMinutes: this.windowMinutes, historyMinutes: this.historyMinutes, services };
  }

  private instanceView(rt: InstanceRuntime): InstanceView {
    const { info } = rt;
    return {
      service: info.service,
      instance: info.instance,
      address: info.address,
      port: info.port,
      version: info.version,
      ...(info.zone !== undefined ? { zone: info.zone } : {}),
      startedAt: info.startedAt,
      metricsAddress: info.metadata.metrics ?? null,
      health: rt.status,
      ...(rt.healthError !== undefined ? { healthError: rt.healthError } : {}),
      checkedAt: rt.checkedAt,
      ...(rt.scrapeError !== undefined ? { scrapeError: rt.scrapeError } : {}),
      outboxBacklog: rt.gauges?.outboxBacklog ?? null,
      dlqMessages: rt.gauges?.dlqMessages ?? null,
      clients: (rt.gauges?.clients ?? []).map((c) => ({ ...c, stats: clientStats(rt.summary, c.target) })),
      stats: combineStats(servedEntries(rt.summary)),
    };
  }
}
