/**
 * Cost of recording one hop's metrics (server record + client record + client attempt, as the
 * tracing middleware and interceptor do per unary call), in ns, with a Prometheus reader attached.
 *
 *   taskset -c 0 npx tsx bench/telemetry/record.ts [rounds] [calls per round]
 *
 * RECORD_BASELINE=<dir with another copy of mesh/telemetry> measures that copy too, interleaved
 * round by round with this tree's (e.g. the files of an earlier commit, to compare before/after).
 */
import { PrometheusExporter } from "@opentelemetry/exporter-prometheus";
import { AggregationTemporality, MeterProvider } from "@opentelemetry/sdk-metrics";
import { Code } from "@connectrpc/connect";
import * as path from "node:path";

interface MetricsModule {
  bindMeter(m: unknown, readers?: unknown[]): void;
  HistogramReader?: new (t: AggregationTemporality) => unknown;
  meshMetrics: {
    serverRecorder(s: string, m: string): { record(c: Code | undefined, ms: number | undefined): void };
    clientRecorder(t: string, s: string, m: string): { record(c: Code | undefined, ms: number | undefined): void };
    clientAttempt(t: string, m: string, a: number): void;
  };
}

const rounds = Number(process.argv[2] ?? 7);
const calls = Number(process.argv[3] ?? 200_000);

async function setup(dir: string): Promise<() => number> {
  const m = (await import(path.resolve(dir, "metrics.ts"))) as MetricsModule;
  const prometheus = new PrometheusExporter({ preventServerStart: true });
  const meter = new MeterProvider({ readers: [prometheus] }).getMeter("meshwork");
  // Cumulative: what the Prometheus reader uses.
  m.bindMeter(meter, m.HistogramReader ? [new m.HistogramReader(AggregationTemporality.CUMULATIVE)] : []);
  // A handful of methods, as a service has: recorders are per method.
  const methods = ["GetProduct", "ListProducts", "Reserve", "Authorize"];
  const server = methods.map((x) => m.meshMetrics.serverRecorder("catalog.v1.CatalogService", x));
  const client = methods.map((x) => m.meshMetrics.clientRecorder("catalog", "catalog.v1.CatalogService", x));
  return () => {
    const t0 = process.hrtime.bigint();
    for (let i = 0; i < calls; i++) {
      const k = i & 3;
      // 0.2–1.4 ms: loopback latencies, first buckets; every 64th a NotFound.
      const ms = 0.2 + (i % 13) * 0.1;
      const code = (i & 63) === 0 ? Code.NotFound : undefined;
      server[k].record(code, ms);
      m.meshMetrics.clientAttempt("catalog", methods[k], 1);
      client[k].record(code, ms + 0.05);
    }
    return Number(process.hrtime.bigint() - t0) / calls;
  };
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

void (async () => {
  const runs: [string, () => number][] = [["current", await setup(path.join(__dirname, "../../mesh/telemetry"))]];
  if (process.env.RECORD_BASELINE) runs.unshift(["baseline", await setup(process.env.RECORD_BASELINE)]);
  const ns = new Map(runs.map(([name]) => [name, [] as number[]]));
  // Warm-up round (JIT), not counted.
  for (const [, run] of runs) run();
  for (let r = 0; r < rounds; r++) for (const [name, run] of runs) ns.get(name)!.push(run());
  const out: Record<string, unknown> = { calls, rounds };
  for (const [name, xs] of ns) out[name] = { medianNsPerCall: Math.round(median(xs)), rounds: xs.map(Math.round) };
  if (ns.has("baseline")) out.ratio = Number((median(ns.get("current")!) / median(ns.get("baseline")!)).toFixed(3));
  console.log(JSON.stringify(out));
})();
