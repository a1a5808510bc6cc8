/**
 * The hop benchmark as a function: plain grpc-js, Meshwork and (optionally) connect-node servers
 * pinned to CPU 0, each round's load driver pinned to CPU 1, rounds interleaved across paths,
 * medians over rounds. Used by `bench/hop.ts` and `bench/run.ts`.
 */
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { startEtcd, startProcess, tsxArgs, waitFor, type ManagedProcess } from "../../mesh/infra/index.js";
import { median } from "../lib/stats.js";
import { isMeshLayer, type MeshLayer } from "./layers.js";

/** A path through which the catalog GetProduct call travels: the baselines and the Meshwork layers (layers.ts). */
export type HopKind = "plain" | "connect" | MeshLayer;

/** One driver round: successful calls per second, latency percentiles in ms, calls by status. */
export interface RoundResult {
  kind: string;
  rps: number;
  p50: number;
  p99: number;
  codes: Record<string, number>;
}

/** A hop round: a {@link RoundResult} plus where the CPU went. */
export interface HopRoundResult extends RoundResult {
  /** Calls made in the measured window. */
  calls: number;
  /** CPU time (user + system) per call of the driver process: the client side of the hop. */
  driverCpuUs: number;
  /** CPU time per call of the server process over the same window; NaN where /proc is missing. */
  serverCpuUs: number;
}

/** Medians over rounds for one path. `p50At1`/`p99At1` are undefined when the 1-in-flight rounds were skipped. */
export interface HopSummary {
  rps: number;
  p50: number;
  p99: number;
  p50At1: number | undefined;
  /** Latency added by the path itself, without queueing behind other calls. */
  p99At1: number | undefined;
  /** Calls that did not end OK, over every round of this path. */
  failures: number;
  /** Median CPU µs per call of the server process and of the driver (client) process, at the full concurrency. */
  serverCpuUs: number;
  driverCpuUs: number;
}

/** Options of {@link runHop}. */
export interface HopOptions {
  kinds: HopKind[];
  rounds: number;
  seconds: number;
  concurrency: number;
  /** Also run a round with 1 call in flight per path (latency without queueing). */
  singleInFlight: boolean;
  progress?: (line: string) => void;
}

/** Every path's summary and raw rounds. */
export interface HopResult {
  summary: Partial<Record<HopKind, HopSummary>>;
  rounds: Record<string, HopRoundResult[]>;
}

// HOP_CPU_PROF=<dir>: every server and driver writes a V8 CPU profile there (read them with
// bench/edge/profile-summary.ts); node refuses --cpu-prof in NODE_OPTIONS.
const PROFILE = process.env.HOP_CPU_PROF ? ["--cpu-prof", `--cpu-prof-dir=${process.env.HOP_CPU_PROF}`] : [];

function pinned(cpu: number, file: string, args: string[], env: NodeJS.ProcessEnv = process.env): ManagedProcess {
  return startProcess("taskset", ["-c", String(cpu), process.execPath, ...PROFILE, ...tsxArgs(file, ...args)], { env });
}

async function readyPort(p: ManagedProcess): Promise<number> {
  return waitFor(
    () => {
      const m = /ready (\d+)/.exec(p.output());
      if (p.proc.exitCode !== null) throw new Error(p.output());
      return m ? Number(m[1]) : undefined;
    },
    { what: "server ready", timeoutMs: 30_000 },
  );
}

// Clock ticks per second of /proc/<pid>/stat times: 100 on every Linux build Node supports.
const CLK_TCK = 100;

/** CPU time (user + system) of a process in µs from /proc, or NaN where that is not available. */
function processCpuUs(pid: number | undefined): number {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    // Fields after the parenthesised command name: state is field 3, utime 14, stime 15.
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    return ((Number(fields[11]) + Number(fields[12])) / CLK_TCK) * 1e6;
  } catch {
    return NaN;
  }
}

async function round(kind: HopKind, target: string, conc: number, seconds: number, server: ManagedProcess): Promise<HopRoundResult> {
  const d = pinned(1, join(__dirname, "driver.ts"), [kind, target, String(conc), String(seconds * 1000)]);
  // The server's CPU time over exactly the driver's measured window (it prints the markers).
  let serverStart = NaN;
  let serverEnd = NaN;
  let pending = "";
  d.proc.stdout?.on("data", (chunk: Buffer) => {
    pending += chunk.toString("utf8");
    let i: number;
    while ((i = pending.indexOf("\n")) >= 0) {
      const line = pending.slice(0, i).trim();
      pending = pending.slice(i + 1);
      if (line === "measure-start") serverStart = processCpuUs(server.proc.pid);
      else if (line === "measure-end") serverEnd = processCpuUs(server.proc.pid);
    }
  });
  const exit = await d.exited;
  const line = d.output().trim().split("\n").pop() ?? "";
  if (exit.code !== 0) throw new Error(`${kind} driver failed: ${d.output()}`);
  const r = JSON.parse(line) as Omit<HopRoundResult, "serverCpuUs">;
  return { ...r, serverCpuUs: (serverEnd - serverStart) / Math.max(1, r.calls) };
}

const failuresOf = (rs: RoundResult[]) => rs.reduce((n, r) => n + Object.entries(r.codes).reduce((a, [c, v]) => a + (c === "ok" ? 0 : v), 0), 0);

/** Starts the servers of `opts.kinds`, runs interleaved rounds, stops everything, returns medians. */
export async function runHop(opts: HopOptions): Promise<HopResult> {
  const etcd = await startEtcd();
  const servers: ManagedProcess[] = [];
  try {
    const targets: Partial<Record<HopKind, string>> = {};
    const serverOf: Partial<Record<HopKind, ManagedProcess>> = {};
    for (const kind of opts.kinds) {
      if (isMeshLayer(kind)) {
        const p = pinned(0, join(__dirname, "mesh-server.ts"), [kind], { ...process.env, ETCD_ENDPOINTS: etcd.endpoint });
        servers.push(p);
        serverOf[kind] = p;
        await readyPort(p);
        // A Meshwork driver finds its layer's server through etcd, so its target is etcd.
        targets[kind] = etcd.endpoint;
      } else {
        const p = pinned(0, join(__dirname, kind === "plain" ? "plain-server.ts" : "connect-server.ts"), []);
        servers.push(p);
        serverOf[kind] = p;
        targets[kind] = `127.0.0.1:${await readyPort(p)}`;
      }
    }
    const rounds: Record<string, HopRoundResult[]> = {};
    for (let r = 0; r < opts.rounds; r++) {
      for (const kind of opts.kinds) (rounds[kind] ??= []).push(await round(kind, targets[kind]!, opts.concurrency, opts.seconds, serverOf[kind]!));
      if (opts.singleInFlight) {
        for (const kind of opts.kinds) (rounds[`${kind}1`] ??= []).push(await round(kind, targets[kind]!, 1, opts.seconds, serverOf[kind]!));
      }
      opts.progress?.(`hop round ${r + 1}/${opts.rounds} done`);
    }
    const summary: Partial<Record<HopKind, HopSummary>> = {};
    for (const kind of opts.kinds) {
      const rs = rounds[kind];
      const at1 = rounds[`${kind}1`];
      summary[kind] = {
        rps: median(rs.map((x) => x.rps)),
        p50: median(rs.map((x) => x.p50)),
        p99: median(rs.map((x) => x.p99)),
        p50At1: at1 ? median(at1.map((x) => x.p50)) : undefined,
        p99At1: at1 ? median(at1.map((x) => x.p99)) : undefined,
        failures: failuresOf(rs) + (at1 ? failuresOf(at1) : 0),
        serverCpuUs: median(rs.map((x) => x.serverCpuUs)),
        driverCpuUs: median(rs.map((x) => x.driverCpuUs)),
      };
    }
    return { summary, rounds };
  } finally {
    for (const s of servers) await s.stop();
    await etcd.stop();
  }
}
