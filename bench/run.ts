/**
 * Every benchmark side by side with its baseline, in one run:
 *
 *   npx tsx bench/run.ts [--quick] [--only 1,4]
 *
 * 1. Meshwork hop vs plain grpc-js → grpc-js, by layer (bench/hop/layers.ts): 1a core (discovery,
 *    balancing, adapter), 1b every policy on, 1 as services run it (policies + telemetry)
 * 2. connect-node gRPC client + server over h2c (the naive stack) vs plain grpc-js (same rounds as 1)
 * 3. gateway Connect JSON → service vs the service's own Connect JSON endpoint (HTTP/1.1)
 * 4. discovery convergence after SIGTERM / SIGKILL vs the goals, 100 instances vs 1
 * 5. RSS per idle service process vs the 80 MB goal, tsx loader floor vs plain node
 * 6. cold start of the local mesh vs the 10 s goal
 * 7. gateway chain vs the moleculer-web → Moleculer chain (wrk, both on one core); REST vs Connect;
 *    the floor (node:http → plain grpc-js → grpc-js, no Meshwork) vs Moleculer and vs the gateway
 *    (MESHWORK_BENCH_EDGE_COSTS=1 adds gateway variants with telemetry, tracing or the access log off)
 *
 * Servers run on CPU 0 and load drivers on CPU 1 (taskset); rounds interleave the paths and
 * medians over rounds are reported as ratios. Writes bench/results/latest.json and latest.svg.
 * `--quick` is a smoke run (~10 s of measurement per scenario): its numbers are not for comparison.
 */
import { mkdirSync, writeFileSync } from "node:fs";
import { cpus, loadavg } from "node:os";
import { join } from "node:path";
import { runEdge } from "./edge/run-edge.js";
import { MESH_LAYERS } from "./hop/layers.js";
import { runHop, type HopKind, type HopSummary } from "./hop/run-hop.js";
import { table } from "./lib/stats.js";
import { ratioChart } from "./lib/svg.js";
import { runColdStart } from "./scenarios/cold-start.js";
import { runDiscovery } from "./scenarios/discovery.js";
import { meets, ratioOf, type Row } from "./scenarios/row.js";
import { runRss } from "./scenarios/rss.js";
import { runPeer } from "./moleculer/run-peer.js";

const quick = process.argv.includes("--quick");
const onlyArg = process.argv.indexOf("--only");
const only = onlyArg > 0 ? new Set(process.argv[onlyArg + 1].split(",").map(Number)) : undefined;
const wanted = (n: number) => !only || only.has(n);

// Full: 5 interleaved rounds × 3 s as in bench/hop.ts; quick: one 1 s round per path.
const ROUNDS = quick ? 1 : 5;
const SECONDS = quick ? 1 : 3;
// 16 in flight saturates one server core without queueing far past it (bench/hop.ts).
const CONCURRENCY = 16;
// 3 repeats give a median that one slow start on a shared machine cannot move.
const REPEATS = quick ? 1 : 3;
// Idle time before reading RSS: long enough for start-up garbage to be collected.
const SETTLE_MS = quick ? 1_000 : 3_000;
// Goals from the brief: SIGTERM drop ≤ 1 s (R2), SIGKILL drop ≤ TTL + 1 s (R1), RSS ≤ 80 MB, cold start ≤ 10 s.
const GOAL_SIGTERM_MS = 1_000;
// The goal is 80 MB (decimal); /proc reports KiB, shown here in MiB.
const GOAL_RSS_MIB = 80e6 / 2 ** 20;
const GOAL_COLD_START_MS = 10_000;
// Goals from issue #7: the gateway chain ≥ 1.5 × Moleculer's throughput; REST within 10 % of Connect.
const GOAL_PEER_RATIO = 1.5;
const GOAL_REST_RATIO = 0.9;
// What each part of the gateway's telemetry costs: the same gateway with one part switched off by
// its standard variable.
const EDGE_COST_VARIANTS: Record<string, NodeJS.ProcessEnv> = {
  "telemetry off": { OTEL_SDK_DISABLED: "true" },
  "spans off": { OTEL_TRACES_SAMPLER: "always_off" },
  "access log off": { LOG_LEVEL: "warn" },
};

const progress = (l: string) => process.stderr.write(`[bench] ${l}\n`);
const rows: Row[] = [];
const errors: Record<string, string> = {};
const raw: Record<string, unknown> = {};

function hopRows(scenario: string, side: HopSummary, plain: HopSummary, label: string): void {
  const failures = side.failures + plain.failures;
  rows.push(
    { scenario, metric: "throughput", value: side.rps, baseline: plain.rps, baselineLabel: label, unit: "req/s", better: "higher", failures },
    { scenario, metric: `p50 @${CONCURRENCY} in flight`, value: side.p50, baseline: plain.p50, baselineLabel: label, unit: "ms", better: "lower", failures },
    {
      scenario,
      metric: `p99 @${CONCURRENCY} in flight`,
      value: side.p99,
      baseline: plain.p99,
      baselineLabel: label,
      unit: "ms",
      better: "lower",
      failures,
      note: `added p99 ${(side.p99 - plain.p99).toFixed(2)} ms`,
    },
  );
  if (side.p50At1 !== undefined && plain.p50At1 !== undefined) {
    rows.push({ scenario, metric: "p50 @1 in flight", value: side.p50At1, baseline: plain.p50At1, baselineLabel: label, unit: "ms", better: "lower", failures });
  }
  if (side.p99At1 !== undefined && plain.p99At1 !== undefined) {
    rows.push({
      scenario,
      metric: "p99 @1 in flight",
      value: side.p99At1,
      baseline: plain.p99At1,
      baselineLabel: label,
      unit: "ms",
      better: "lower",
      failures,
      note: `added p99 ${(side.p99At1 - plain.p99At1).toFixed(2)} ms`,
    });
  }
  // Where the time goes: CPU per call of the server process (on CPU 0) and of the driver (the client side, CPU 1).
  rows.push(
    { scenario, metric: "server CPU per call", value: side.serverCpuUs, baseline: plain.serverCpuUs, baselineLabel: label, unit: "µs", better: "lower", failures },
    { scenario, metric: "client CPU per call", value: side.driverCpuUs, baseline: plain.driverCpuUs, baselineLabel: label, unit: "µs", better: "lower", failures },
  );
}

async function scenario(n: number, name: string, body: () => Promise<void>): Promise<void> {
  if (!wanted(n)) return;
  progress(`scenario ${n}: ${name}`);
  const t0 = Date.now();
  try {
    await body();
  } catch (e) {
    errors[`${n} ${name}`] = (e as Error).message.slice(0, 2_000);
    progress(`scenario ${n} failed: ${(e as Error).message.slice(0, 2_000)}`);
  }
  progress(`scenario ${n} took ${((Date.now() - t0) / 1000).toFixed(1)} s`);
}

async function main(): Promise<void> {
  const startedAt = new Date().toISOString();
  const loadBefore = loadavg();
  if (wanted(1) || wanted(2)) {
    await scenario(1, "meshwork hop + connect-node hop vs plain grpc-js", async () => {
      const kinds: HopKind[] = ["plain", ...(wanted(1) ? MESH_LAYERS : []), ...(wanted(2) ? (["connect"] as const) : [])];
      const hop = await runHop({ kinds, rounds: ROUNDS, seconds: SECONDS, concurrency: CONCURRENCY, singleInFlight: !quick, progress });
      raw.hop = hop;
      const plain = hop.summary.plain!;
      if (hop.summary["mesh-core"]) hopRows("1a meshwork hop, core", hop.summary["mesh-core"], plain, "plain grpc-js");
      if (hop.summary["mesh-policy"]) hopRows("1b meshwork hop + policies", hop.summary["mesh-policy"], plain, "plain grpc-js");
      if (hop.summary.mesh) hopRows("1 meshwork hop as services run", hop.summary.mesh, plain, "plain grpc-js");
      if (hop.summary.connect) hopRows("2 connect-node hop", hop.summary.connect, plain, "plain grpc-js");
    });
  }
  await scenario(3, "gateway Connect JSON vs the service's own Connect JSON", async () => {
    const edge = await runEdge({ rounds: ROUNDS, seconds: SECONDS, connections: CONCURRENCY, progress });
    raw.edge = edge;
    const failures = edge.direct.failures + edge.gateway.failures;
    const label = "service's Connect JSON";
    const s = "3 gateway edge";
    rows.push(
      { scenario: s, metric: "throughput", value: edge.gateway.rps, baseline: edge.direct.rps, baselineLabel: label, unit: "req/s", better: "higher", failures },
      { scenario: s, metric: `p50 @${CONCURRENCY} conns`, value: edge.gateway.p50, baseline: edge.direct.p50, baselineLabel: label, unit: "ms", better: "lower", failures },
      {
        scenario: s,
        metric: `p99 @${CONCURRENCY} conns`,
        value: edge.gateway.p99,
        baseline: edge.direct.p99,
        baselineLabel: label,
        unit: "ms",
        better: "lower",
        failures,
        note: `added p99 ${(edge.gateway.p99 - edge.direct.p99).toFixed(2)} ms`,
      },
    );
  });
  await scenario(4, "discovery convergence", async () => {
    const d = await runDiscovery({ repeats: REPEATS, progress });
    raw.discovery = d;
    for (const p of d.problems) progress(`discovery: ${p}`);
    const s = "4 discovery";
    rows.push(
      { scenario: s, metric: "SIGTERM → watcher drops", value: d.sigtermMs, baseline: GOAL_SIGTERM_MS, baselineLabel: "goal 1 s", unit: "ms", better: "lower", failures: d.failures },
      {
        scenario: s,
        metric: "SIGKILL → watcher drops",
        value: d.sigkillMs,
        baseline: (d.ttlSeconds + 1) * 1000,
        baselineLabel: `goal TTL ${d.ttlSeconds} s + 1 s`,
        unit: "ms",
        better: "lower",
        failures: d.failures,
      },
      { scenario: s, metric: "watcher sees 100 instances", value: d.see100Ms, baseline: d.see1Ms, baselineLabel: "sees 1 instance", unit: "ms", better: "lower", failures: d.failures, note: "ratio > 1 expected" },
    );
  });
  await scenario(5, "RSS per idle service", async () => {
    const r = await runRss({ settleMs: SETTLE_MS, progress });
    raw.rss = r;
    for (const [name, m] of Object.entries(r.services)) {
      rows.push({ scenario: "5 idle RSS", metric: `${name} VmRSS (bundle)`, value: m.rssMiB, baseline: GOAL_RSS_MIB, baselineLabel: "goal 80 MB", unit: "MiB", better: "lower", failures: r.failures, note: `peak ${m.hwmMiB.toFixed(0)} MiB; tsc dist/ ${r.tscDist[name].rssMiB.toFixed(1)} MiB` });
    }
    rows.push({
      scenario: "5 idle RSS",
      metric: "tsx loader, idle file",
      value: r.tsxIdleMiB,
      baseline: r.plainNodeIdleMiB,
      baselineLabel: "plain node, idle",
      unit: "MiB",
      better: "lower",
      failures: 0,
      note: `loader floor +${(r.tsxIdleMiB - r.plainNodeIdleMiB).toFixed(0)} MiB`,
    });
  });
  await scenario(6, "cold start of the local mesh", async () => {
    const c = await runColdStart({ repeats: REPEATS, progress });
    raw.coldStart = c;
    rows.push({
      scenario: "6 cold start",
      metric: `local mesh ready (${c.samples.processes[0] ?? "?"} processes)`,
      value: c.readyMs,
      baseline: GOAL_COLD_START_MS,
      baselineLabel: "goal 10 s",
      unit: "ms",
      better: "lower",
      failures: c.failures,
      note: `wall ${c.wallMs.toFixed(0)} ms incl. etcd/NATS`,
    });
  });

  await scenario(7, "gateway chain vs moleculer-web → Moleculer; REST vs Connect", async () => {
    const variants = process.env.MESHWORK_BENCH_EDGE_COSTS === "1" ? EDGE_COST_VARIANTS : undefined;
    const peer = await runPeer({ rounds: ROUNDS, seconds: SECONDS, connections: CONCURRENCY, singleInFlight: true, variants, progress });
    raw.peer = peer;
    const g = peer.summary["gateway connect"];
    const gr = peer.summary["gateway rest"];
    const m = peer.summary["moleculer connect"];
    const mr = peer.summary["moleculer rest"];
    const floor = peer.summary["floor connect"];
    const s = "7 gateway vs Moleculer";
    const fail = (...xs: typeof g[]) => xs.reduce((n, x) => n + x.failures, 0);
    const vsMol = (a: number, b: number) => `${(a / b).toFixed(2)}× Moleculer`;
    rows.push(
      {
        scenario: s,
        metric: `Connect JSON throughput @${CONCURRENCY} conns`,
        value: g.rps,
        baseline: GOAL_PEER_RATIO * m.rps,
        baselineLabel: `goal 1.5 × Moleculer ${m.rps.toFixed(0)}`,
        unit: "req/s",
        better: "higher",
        failures: fail(g, m),
        note: vsMol(g.rps, m.rps),
      },
      {
        scenario: s,
        metric: `REST throughput @${CONCURRENCY} conns`,
        value: gr.rps,
        baseline: GOAL_PEER_RATIO * mr.rps,
        baselineLabel: `goal 1.5 × Moleculer REST ${mr.rps.toFixed(0)}`,
        unit: "req/s",
        better: "higher",
        failures: fail(gr, mr),
        note: vsMol(gr.rps, mr.rps),
      },
      { scenario: s, metric: "Connect JSON p50 @1 in flight", value: g.p50At1 ?? NaN, baseline: m.p50At1 ?? NaN, baselineLabel: "Moleculer", unit: "ms", better: "lower", failures: fail(g, m) },
      { scenario: s, metric: `Connect JSON p99 @${CONCURRENCY} conns`, value: g.p99, baseline: m.p99, baselineLabel: "Moleculer", unit: "ms", better: "lower", failures: fail(g, m) },
      { scenario: s, metric: "server CPU per request (both processes)", value: g.cpuUs, baseline: m.cpuUs, baselineLabel: "Moleculer", unit: "µs", better: "lower", failures: fail(g, m) },
      {
        scenario: s,
        metric: "gateway alone (stub backend), CPU per request",
        value: peer.summary["gateway alone"].cpuUs,
        baseline: m.cpuUs,
        baselineLabel: "Moleculer's whole chain",
        unit: "µs",
        better: "lower",
        failures: peer.summary["gateway alone"].failures,
        note: `${peer.summary["gateway alone"].rps.toFixed(0)} req/s`,
      },
      {
        scenario: s,
        metric: "floor: node:http → plain grpc-js, no Meshwork",
        value: floor.rps,
        baseline: GOAL_PEER_RATIO * m.rps,
        baselineLabel: `goal 1.5 × Moleculer ${m.rps.toFixed(0)}`,
        unit: "req/s",
        better: "higher",
        failures: floor.failures,
        note: `${vsMol(floor.rps, m.rps)}; CPU ${floor.cpuUs.toFixed(1)} µs/request`,
      },
      {
        scenario: "7 gateway vs the floor",
        metric: `Connect JSON throughput @${CONCURRENCY} conns`,
        value: g.rps,
        baseline: floor.rps,
        baselineLabel: "floor",
        unit: "req/s",
        better: "higher",
        failures: fail(g, floor),
        note: `CPU ${g.cpuUs.toFixed(0)} vs ${floor.cpuUs.toFixed(0)} µs/request`,
      },
      { scenario: s, metric: "floor p50 @1 in flight", value: floor.p50At1 ?? NaN, baseline: m.p50At1 ?? NaN, baselineLabel: "Moleculer", unit: "ms", better: "lower", failures: floor.failures },
      {
        scenario: "7 gateway REST vs Connect",
        metric: `throughput @${CONCURRENCY} conns`,
        value: gr.rps,
        baseline: GOAL_REST_RATIO * g.rps,
        baselineLabel: `goal 0.9 × Connect ${g.rps.toFixed(0)}`,
        unit: "req/s",
        better: "higher",
        failures: fail(g, gr),
        note: `${(gr.rps / g.rps).toFixed(2)}× Connect`,
      },
      { scenario: "7 gateway REST vs Connect", metric: "p50 @1 in flight", value: gr.p50At1 ?? NaN, baseline: g.p50At1 ?? NaN, baselineLabel: "Connect", unit: "ms", better: "lower", failures: fail(g, gr) },
    );
    for (const v of Object.keys(variants ?? {})) {
      const x = peer.summary[`gateway connect ${v}`];
      rows.push({
        scenario: "7 gateway telemetry cost",
        metric: `Connect throughput, ${v}`,
        value: x.rps,
        baseline: g.rps,
        baselineLabel: "everything on",
        unit: "req/s",
        better: "higher",
        failures: x.failures,
        note: `CPU ${x.cpuUs.toFixed(0)} vs ${g.cpuUs.toFixed(0)} µs/request`,
      });
    }
  });

  const fmt = (v: number) => (!Number.isFinite(v) ? "n/a" : Math.abs(v) >= 100 ? v.toFixed(0) : v.toFixed(2));
  const status = (r: Row) => (r.failures > 0 ? `FAILURES ${r.failures}` : meets(r) ? "ok" : r.note === "ratio > 1 expected" ? "ok" : "worse");
  const text = table(
    ["scenario", "metric", "measured", "baseline", "ratio", "status", "note"],
    rows.map((r) => [r.scenario, r.metric, `${fmt(r.value)} ${r.unit}`, `${fmt(r.baseline)} ${r.unit} (${r.baselineLabel})`, `${ratioOf(r).toFixed(3)}×`, status(r), r.note ?? ""]),
  );
  const loadAfter = loadavg();
  console.log(text);
  for (const [k, v] of Object.entries(errors)) console.log(`scenario ${k}: ERROR ${v.split("\n")[0]}`);
  console.log(
    `${quick ? "QUICK smoke run (1 round / 1 repeat: not for comparison). " : ""}load average before ${loadBefore.map((x) => x.toFixed(2)).join(" ")}, after ${loadAfter.map((x) => x.toFixed(2)).join(" ")} on ${cpus().length} CPUs`,
  );

  const dir = join(__dirname, "results");
  mkdirSync(dir, { recursive: true });
  const json = {
    startedAt,
    quick,
    machine: { cpus: cpus().length, node: process.version, loadBefore, loadAfter },
    config: { rounds: ROUNDS, seconds: SECONDS, concurrency: CONCURRENCY, repeats: REPEATS, settleMs: SETTLE_MS },
    rows: rows.map((r) => ({ ...r, ratio: ratioOf(r), status: status(r) })),
    errors,
    raw,
  };
  writeFileSync(join(dir, "latest.json"), JSON.stringify(json, (_, v) => (typeof v === "bigint" ? String(v) : v), 2) + "\n");
  writeFileSync(
    join(dir, "latest.svg"),
    ratioChart(
      `Meshwork vs baselines (measured / baseline)${quick ? " — quick run" : ""}`,
      rows.map((r) => ({ label: `${r.scenario}: ${r.metric}`, ratio: ratioOf(r), good: status(r) === "ok", failed: r.failures > 0 })),
    ),
  );
  progress(`wrote ${join(dir, "latest.json")} and latest.svg`);
  process.exitCode = Object.keys(errors).length > 0 || rows.some((r) => r.failures > 0) ? 1 : 0;
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
