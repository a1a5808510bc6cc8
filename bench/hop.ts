/**
 * Meshwork hop vs plain grpc-js, side by side in one run.
 *
 *   npx tsx bench/hop.ts [--rounds 5] [--seconds 3] [--concurrency 16]
 *
 * Both servers are pinned to CPU 0 and each round's load driver to CPU 1 (taskset), rounds are
 * interleaved (plain, mesh, plain, mesh, ...), and the report gives medians over rounds and the
 * ratio mesh/plain. The Meshwork side goes through etcd discovery, the balancer, the
 * protobuf-es ↔ grpc-js adapter and the server bootstrap; the plain side is proto-loader on both ends.
 */
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { startEtcd, startProcess, tsxArgs, waitFor, type ManagedProcess } from "../mesh/infra/index.js";
import { median, table } from "./lib/stats.js";

function arg(name: string, fallback: number): number {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? Number(process.argv[i + 1]) : fallback;
}

// 5 rounds × 3 s: enough for a stable median on a quiet machine, short enough to run often.
const rounds = arg("rounds", 5);
const seconds = arg("seconds", 3);
// 16 in flight saturates one server core without queueing far past it.
const concurrency = arg("concurrency", 16);

function pinned(cpu: number, file: string, args: string[], env: NodeJS.ProcessEnv = process.env): ManagedProcess {
  return startProcess("taskset", ["-c", String(cpu), process.execPath, ...tsxArgs(file, ...args)], { env });
}

async function readyPort(p: ManagedProcess): Promise<number> {
  return waitFor(() => {
    const m = /ready (\d+)/.exec(p.output());
    if (p.proc.exitCode !== null) throw new Error(p.output());
    return m ? Number(m[1]) : undefined;
  }, { what: "server ready", timeoutMs: 30_000 });
}

interface RoundResult {
  kind: string;
  rps: number;
  p50: number;
  p99: number;
  codes: Record<string, number>;
}

async function round(kind: "plain" | "mesh", target: string, conc: number): Promise<RoundResult> {
  const d = pinned(1, join(__dirname, "hop/driver.ts"), [kind, target, String(conc), String(seconds * 1000)]);
  const exit = await d.exited;
  const line = d.output().trim().split("\n").pop() ?? "";
  if (exit.code !== 0) throw new Error(`driver failed: ${d.output()}`);
  return JSON.parse(line) as RoundResult;
}

async function main() {
  const etcd = await startEtcd();
  const plain = pinned(0, join(__dirname, "hop/plain-server.ts"), []);
  const mesh = pinned(0, join(__dirname, "hop/mesh-server.ts"), [], { ...process.env, ETCD_ENDPOINTS: etcd.endpoint });
  try {
    const plainTarget = `127.0.0.1:${await readyPort(plain)}`;
    await readyPort(mesh);
    const results: Record<string, RoundResult[]> = { plain: [], mesh: [], plain1: [], mesh1: [] };
    for (let r = 0; r < rounds; r++) {
      results.plain.push(await round("plain", plainTarget, concurrency));
      results.mesh.push(await round("mesh", etcd.endpoint, concurrency));
      results.plain1.push(await round("plain", plainTarget, 1));
      results.mesh1.push(await round("mesh", etcd.endpoint, 1));
      process.stderr.write(`round ${r + 1}/${rounds} done\n`);
    }
    const m = (k: string, f: keyof RoundResult) => median(results[k].map((x) => x[f] as number));
    const failures = Object.values(results).flat().reduce((n, x) => n + Object.entries(x.codes).filter(([c]) => c !== "ok").reduce((a, [, v]) => a + v, 0), 0);
    const summary = {
      machine: { cpus: require("node:os").cpus().length, node: process.version },
      config: { rounds, seconds, concurrency },
      plain: { rps: m("plain", "rps"), p50: m("plain", "p50"), p99: m("plain", "p99"), p50At1: m("plain1", "p50") },
      mesh: { rps: m("mesh", "rps"), p50: m("mesh", "p50"), p99: m("mesh", "p99"), p50At1: m("mesh1", "p50") },
      failures,
    };
    const ratio = summary.mesh.rps / summary.plain.rps;
    const addedP99 = summary.mesh.p99 - summary.plain.p99;
    console.log(
      table(
        ["path", "req/s (median)", "p50 ms", "p99 ms", "p50 ms @1 in flight"],
        [
          ["plain grpc-js → grpc-js", summary.plain.rps.toFixed(0), summary.plain.p50.toFixed(3), summary.plain.p99.toFixed(3), summary.plain.p50At1.toFixed(3)],
          ["meshwork client → server", summary.mesh.rps.toFixed(0), summary.mesh.p50.toFixed(3), summary.mesh.p99.toFixed(3), summary.mesh.p50At1.toFixed(3)],
        ],
      ),
    );
    console.log(`throughput ratio mesh/plain: ${ratio.toFixed(3)}; added p99: ${addedP99.toFixed(3)} ms; failed calls: ${failures}`);
    mkdirSync(join(__dirname, "results"), { recursive: true });
    writeFileSync(join(__dirname, "results/hop.json"), JSON.stringify({ ...summary, ratio, addedP99, rounds: results }, null, 2));
  } finally {
    await plain.stop();
    await mesh.stop();
    await etcd.stop();
  }
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
