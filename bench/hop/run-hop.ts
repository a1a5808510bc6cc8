/**
 * The hop benchmark as a function: plain grpc-js, Meshwork and (optionally) connect-node servers
 * pinned to CPU 0, each round's load driver pinned to CPU 1, rounds interleaved across paths,
 * medians over rounds. Used by `bench/hop.ts` and `bench/run.ts`.
 */
import { join } from "node:path";
import { startEtcd, startProcess, tsxArgs, waitFor, type ManagedProcess } from "../../mesh/infra/index.js";
import { median } from "../lib/stats.js";

/** A path through which the catalog GetProduct call travels. */
export type HopKind = "plain" | "mesh" | "connect";

/** One driver round: successful calls per second, latency percentiles in ms, calls by status. */
export interface RoundResult {
  kind: string;
  rps: number;
  p50: number;
  p99: number;
  codes: Record<string, number>;
}

/** Medians over rounds for one path. `p50At1` is undefined when the 1-in-flight rounds were skipped. */
export interface HopSummary {
  rps: number;
  p50: number;
  p99: number;
  p50At1: number | undefined;
  /** Calls that did not end OK, over every round of this path. */
  failures: number;
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
  summary: Record<HopKind, HopSummary | undefined>;
  rounds: Record<string, RoundResult[]>;
}

function pinned(cpu: number, file: string, args: string[], env: NodeJS.ProcessEnv = process.env): ManagedProcess {
  return startProcess("taskset", ["-c", String(cpu), process.execPath, ...tsxArgs(file, ...args)], { env });
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

async function round(kind: HopKind, target: string, conc: number, seconds: number): Promise<RoundResult> {
  const d = pinned(1, join(__dirname, "driver.ts"), [kind, target, String(conc), String(seconds * 1000)]);
  const exit = await d.exited;
  const line = d.output().trim().split("\n").pop() ?? "";
  if (exit.code !== 0) throw new Error(`${kind} driver failed: ${d.output()}`);
  return JSON.parse(line) as RoundResult;
}

const failuresOf = (rs: RoundResult[]) => rs.reduce((n, r) => n + Object.entries(r.codes).reduce((a, [c, v]) => a + (c === "ok" ? 0 : v), 0), 0);

/** Starts the servers of `opts.kinds`, runs interleaved rounds, stops everything, returns medians. */
export async function runHop(opts: HopOptions): Promise<HopResult> {
  const etcd = await startEtcd();
  const servers: ManagedProcess[] = [];
  try {
    const targets: Partial<Record<HopKind, string>> = {};
    for (const kind of opts.kinds) {
      if (kind === "mesh") {
        const p = pinned(0, join(__dirname, "mesh-server.ts"), [], { ...process.env, ETCD_ENDPOINTS: etcd.endpoint });
        servers.push(p);
        await readyPort(p);
        // The Meshwork driver finds the server through etcd, so its target is etcd.
        targets.mesh = etcd.endpoint;
      } else {
        const p = pinned(0, join(__dirname, kind === "plain" ? "plain-server.ts" : "connect-server.ts"), []);
        servers.push(p);
        targets[kind] = `127.0.0.1:${await readyPort(p)}`;
      }
    }
    const rounds: Record<string, RoundResult[]> = {};
    for (let r = 0; r < opts.rounds; r++) {
      for (const kind of opts.kinds) (rounds[kind] ??= []).push(await round(kind, targets[kind]!, opts.concurrency, opts.seconds));
      if (opts.singleInFlight) {
        for (const kind of opts.kinds) (rounds[`${kind}1`] ??= []).push(await round(kind, targets[kind]!, 1, opts.seconds));
      }
      opts.progress?.(`hop round ${r + 1}/${opts.rounds} done`);
    }
    const summary = { plain: undefined, mesh: undefined, connect: undefined } as Record<HopKind, HopSummary | undefined>;
    for (const kind of opts.kinds) {
      const rs = rounds[kind];
      const at1 = rounds[`${kind}1`];
      summary[kind] = {
        rps: median(rs.map((x) => x.rps)),
        p50: median(rs.map((x) => x.p50)),
        p99: median(rs.map((x) => x.p99)),
        p50At1: at1 ? median(at1.map((x) => x.p50)) : undefined,
        failures: failuresOf(rs) + (at1 ? failuresOf(at1) : 0),
      };
    }
    return { summary, rounds };
  } finally {
    for (const s of servers) await s.stop();
    await etcd.stop();
  }
}
