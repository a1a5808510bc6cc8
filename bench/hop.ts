/**
 * Meshwork hop vs plain grpc-js, side by side in one run.
 *
 *   npx tsx bench/hop.ts [--rounds 5] [--seconds 3] [--concurrency 16]
 *
 * Every server is pinned to CPU 0 and each round's load driver to CPU 1 (taskset), rounds are
 * interleaved (plain, mesh-core, mesh-policy, mesh, plain, ...), and the report gives medians over
 * rounds and each Meshwork layer's ratio to plain grpc-js (proto-loader on both ends). The layers
 * (bench/hop/layers.ts) go from the bare mesh — etcd discovery, the balancer, the protobuf-es ↔
 * grpc-js adapter, the server bootstrap — through every resilience policy to what services run
 * (telemetry on both sides). Each path also reports the CPU time per call of its server process
 * and of its driver (the client side), and latency at 1 call in flight (the hop's own added
 * latency, no queueing).
 * `bench/run.ts` runs the same measurement (plus connect-node) among its other scenarios.
 */
import { mkdirSync, writeFileSync } from "node:fs";
import { cpus } from "node:os";
import { join } from "node:path";
import { MESH_LAYERS } from "./hop/layers.js";
import { runHop, type HopKind } from "./hop/run-hop.js";
import { table } from "./lib/stats.js";

function arg(name: string, fallback: number): number {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? Number(process.argv[i + 1]) : fallback;
}

// 5 rounds × 3 s: enough for a stable median on a quiet machine, short enough to run often.
const rounds = arg("rounds", 5);
const seconds = arg("seconds", 3);
// 16 in flight saturates one server core without queueing far past it.
const concurrency = arg("concurrency", 16);

const LABELS: Record<HopKind, string> = {
  plain: "plain grpc-js → grpc-js",
  connect: "connect-node → connect-node",
  "mesh-core": "meshwork core (#3)",
  "mesh-policy": "meshwork + every policy (#4, #10)",
  mesh: "meshwork + policies + telemetry",
};

async function main() {
  const kinds: HopKind[] = ["plain", ...MESH_LAYERS];
  const result = await runHop({ kinds, rounds, seconds, concurrency, singleInFlight: true, progress: (l) => process.stderr.write(`${l}\n`) });
  const plain = result.summary.plain!;
  const f = (v: number | undefined, d: number) => (v === undefined ? "-" : v.toFixed(d));
  const rows = kinds.map((k) => {
    const s = result.summary[k]!;
    return [LABELS[k], f(s.rps, 0), k === "plain" ? "1" : f(s.rps / plain.rps, 3), f(s.p50, 3), f(s.p99, 3), f(s.p50At1, 3), f(s.p99At1, 3), f(s.serverCpuUs, 0), f(s.driverCpuUs, 0)];
  });
  console.log(
    table(["path", "req/s (median)", "× plain", "p50 ms", "p99 ms", "p50 ms @1", "p99 ms @1", "server CPU µs/call", "client CPU µs/call"], rows),
  );
  const failures = kinds.reduce((n, k) => n + result.summary[k]!.failures, 0);
  const layers = Object.fromEntries(
    MESH_LAYERS.map((k) => {
      const s = result.summary[k]!;
      return [k, { ...s, ratio: s.rps / plain.rps, addedP99: s.p99 - plain.p99, addedP99At1: (s.p99At1 ?? NaN) - (plain.p99At1 ?? NaN) }];
    }),
  );
  for (const [k, l] of Object.entries(layers)) {
    console.log(`${k}: throughput ${l.ratio.toFixed(3)} × plain; added p99 ${l.addedP99.toFixed(3)} ms @${concurrency}, ${l.addedP99At1.toFixed(3)} ms @1`);
  }
  console.log(`failed calls: ${failures}`);
  mkdirSync(join(__dirname, "results"), { recursive: true });
  writeFileSync(
    join(__dirname, "results/hop.json"),
    JSON.stringify({ machine: { cpus: cpus().length, node: process.version }, config: { rounds, seconds, concurrency }, plain, layers, failures, rounds: result.rounds }, null, 2),
  );
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
