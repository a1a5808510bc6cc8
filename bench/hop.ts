/**
 * Meshwork hop vs plain grpc-js, side by side in one run.
 *
 *   npx tsx bench/hop.ts [--rounds 5] [--seconds 3] [--concurrency 16]
 *
 * Both servers are pinned to CPU 0 and each round's load driver to CPU 1 (taskset), rounds are
 * interleaved (plain, mesh, plain, mesh, ...), and the report gives medians over rounds and the
 * ratio mesh/plain. The Meshwork side goes through etcd discovery, the balancer, the
 * protobuf-es ↔ grpc-js adapter, the default call policy, the server bootstrap and telemetry started
 * on both sides (as runService does); the plain side is proto-loader on both ends. Each path also
 * reports the CPU time per call of its server process and of its driver (the client side).
 * `bench/run.ts` runs the same measurement (plus connect-node) among its other scenarios.
 */
import { mkdirSync, writeFileSync } from "node:fs";
import { cpus } from "node:os";
import { join } from "node:path";
import { runHop } from "./hop/run-hop.js";
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

async function main() {
  const result = await runHop({ kinds: ["plain", "mesh"], rounds, seconds, concurrency, singleInFlight: true, progress: (l) => process.stderr.write(`${l}\n`) });
  const plain = result.summary.plain!;
  const mesh = result.summary.mesh!;
  const failures = plain.failures + mesh.failures;
  const ratio = mesh.rps / plain.rps;
  const addedP99 = mesh.p99 - plain.p99;
  const row = (name: string, s: typeof plain) => [
    name,
    s.rps.toFixed(0),
    s.p50.toFixed(3),
    s.p99.toFixed(3),
    s.p50At1?.toFixed(3) ?? "-",
    s.serverCpuUs.toFixed(0),
    s.driverCpuUs.toFixed(0),
  ];
  console.log(
    table(
      ["path", "req/s (median)", "p50 ms", "p99 ms", "p50 ms @1 in flight", "server CPU µs/call", "client CPU µs/call"],
      [row("plain grpc-js → grpc-js", plain), row("meshwork client → server", mesh)],
    ),
  );
  console.log(`throughput ratio mesh/plain: ${ratio.toFixed(3)}; added p99: ${addedP99.toFixed(3)} ms; failed calls: ${failures}`);
  mkdirSync(join(__dirname, "results"), { recursive: true });
  writeFileSync(
    join(__dirname, "results/hop.json"),
    JSON.stringify({ machine: { cpus: cpus().length, node: process.version }, config: { rounds, seconds, concurrency }, plain, mesh, failures, ratio, addedP99, rounds: result.rounds }, null, 2),
  );
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
