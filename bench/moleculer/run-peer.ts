/**
 * Scenario 7 of bench/run.ts: the Meshwork edge chain against the peer framework's, both on one
 * core. Meshwork: client → gateway (bench/edge/servers.ts, as gateway/main.ts runs it: telemetry,
 * spans, access log) → a catalog-like Meshwork service over grpc-js. Moleculer: client →
 * moleculer-web → a Moleculer service over its TCP transporter (bench/moleculer/servers.ts). All
 * four server processes are pinned to CPU 0; `wrk` (HTTP/1.1, keep-alive) runs on CPU 1. Each
 * chain is measured on its Connect-style route (`POST /catalog.v1.CatalogService/GetProduct`,
 * JSON) and its REST route (`GET /v1/products/{id}`); rounds interleave the paths (the order
 * rotates each round), medians over rounds are reported, plus p50 with one request in flight and
 * the servers' CPU per request (from /proc). Before measuring, every path's answer is checked to be
 * the same JSON.
 *
 * A fifth path, "gateway alone", is the same gateway answering from an in-process stub instead of
 * the backend: the edge's own share of the chain. A sixth, "floor", is node:http → a plain grpc-js
 * client → a plain grpc-js server with no Meshwork code (bench/edge/floor.ts): the best any
 * gateway with a grpc-js edge → service leg can do on this core. `variants` adds gateway processes started with
 * other environment variables (e.g. OTEL_SDK_DISABLED=true) on the Connect route: what each part
 * of the telemetry costs.
 */
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { freePort, startProcess, tsxArgs, waitFor, type ManagedProcess } from "../../mesh/infra/index.js";
import { runWrk, type WrkRequest } from "../edge/wrk.js";
import type { RoundResult } from "../hop/run-hop.js";
import { median } from "../lib/stats.js";

/** Medians over rounds for one path. */
export interface PeerSummary {
  rps: number;
  p50: number;
  p99: number;
  /** p50 in ms with one request in flight (undefined when those rounds were skipped). */
  p50At1: number | undefined;
  /** CPU of the path's server processes (both) per successful request, in µs. */
  cpuUs: number;
  /** Non-2xx responses and socket errors over every round of this path. */
  failures: number;
}

/** Every path's summary and raw rounds. */
export interface PeerResult {
  summary: Record<string, PeerSummary>;
  rounds: Record<string, Array<RoundResult & { cpuUs: number }>>;
  /** The answer every path gave, as checked before the rounds. */
  body: string;
}

/** Options of {@link runPeer}. */
export interface PeerOptions {
  rounds: number;
  seconds: number;
  connections: number;
  singleInFlight: boolean;
  /** Extra gateway processes on the Connect route, by name: environment overrides. */
  variants?: Record<string, NodeJS.ProcessEnv>;
  progress?: (line: string) => void;
}

const SERVER_CPU = 0;
const LOAD_CPU = 1;

const CONNECT: WrkRequest = {
  method: "POST",
  path: "/catalog.v1.CatalogService/GetProduct",
  body: '{"id":"p1"}',
  headers: { "Content-Type": "application/json", "Connect-Protocol-Version": "1" },
};
const REST: WrkRequest = { method: "GET", path: "/v1/products/p1" };

function pinned(file: string, args: string[], env: NodeJS.ProcessEnv = process.env): ManagedProcess {
  return startProcess("taskset", ["-c", String(SERVER_CPU), process.execPath, ...tsxArgs(file, ...args)], { env });
}

async function ready(p: ManagedProcess, what: string): Promise<number[]> {
  return waitFor(
    () => {
      if (p.proc.exitCode !== null) throw new Error(`${what} exited: ${p.output()}`);
      const m = /ready ?([\d ]*)\n/.exec(p.output());
      return m ? m[1].trim().split(" ").filter(Boolean).map(Number) : undefined;
    },
    { what, timeoutMs: 60_000 },
  );
}

/** utime + stime of a process in µs (Linux /proc; clock ticks of 10 ms). */
function cpuUs(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  return (Number(fields[11]) + Number(fields[12])) * 10_000;
}

async function fetchOnce(port: number, r: WrkRequest): Promise<string> {
  const res = await fetch(`http://127.0.0.1:${port}${r.path}`, { method: r.method, body: r.body, headers: r.headers });
  const text = await res.text();
  if (res.status !== 200) throw new Error(`${r.method} ${r.path} on port ${port} answered ${res.status}: ${text.slice(0, 300)}`);
  return text;
}

/** Runs the chains side by side; see the file comment. */
export async function runPeer(opts: PeerOptions): Promise<PeerResult> {
  const procs: ManagedProcess[] = [];
  const start = (p: ManagedProcess) => (procs.push(p), p);
  try {
    const edge = join(__dirname, "..", "edge", "servers.ts");
    const mol = join(__dirname, "servers.ts");
    const floor = join(__dirname, "..", "edge", "floor.ts");
    const backend = start(pinned(edge, ["backend"]));
    const floorService = start(pinned(floor, ["service"]));
    const [molServicePort, molGatewayPort, molHttpPort] = [await freePort(), await freePort(), await freePort()];
    const molService = start(pinned(mol, ["service", String(molServicePort), String(molGatewayPort)]));
    const molGateway = start(pinned(mol, ["gateway", String(molServicePort), String(molGatewayPort), String(molHttpPort)]));
    const [grpcPort] = await ready(backend, "Meshwork backend");
    const gateways: Record<string, { proc: ManagedProcess; port: number }> = {};
    for (const [name, env] of Object.entries({ gateway: {}, stub: {}, ...opts.variants })) {
      const proc = start(pinned(edge, ["gateway", name === "stub" ? "stub" : String(grpcPort)], { ...process.env, ...env }));
      gateways[name] = { proc, port: (await ready(proc, `gateway ${name}`))[0] };
    }
    const floorGateway = start(pinned(floor, ["gateway", String((await ready(floorService, "floor service"))[0])]));
    const [floorPort] = await ready(floorGateway, "floor gateway");
    await ready(molService, "Moleculer service");
    await ready(molGateway, "moleculer-web gateway");

    const paths: Array<{ name: string; port: number; request: WrkRequest; pids: number[] }> = [
      { name: "gateway connect", port: gateways.gateway.port, request: CONNECT, pids: [gateways.gateway.proc.proc.pid!, backend.proc.pid!] },
      { name: "gateway rest", port: gateways.gateway.port, request: REST, pids: [gateways.gateway.proc.proc.pid!, backend.proc.pid!] },
      { name: "moleculer connect", port: molHttpPort, request: CONNECT, pids: [molGateway.proc.pid!, molService.proc.pid!] },
      { name: "moleculer rest", port: molHttpPort, request: REST, pids: [molGateway.proc.pid!, molService.proc.pid!] },
      { name: "gateway alone", port: gateways.stub.port, request: CONNECT, pids: [gateways.stub.proc.proc.pid!] },
      { name: "floor connect", port: floorPort, request: CONNECT, pids: [floorGateway.proc.pid!, floorService.proc.pid!] },
      ...Object.keys(opts.variants ?? {}).map((v) => ({ name: `gateway connect ${v}`, port: gateways[v].port, request: CONNECT, pids: [gateways[v].proc.proc.pid!, backend.proc.pid!] })),
    ];

    // Same answer everywhere: the comparison is only fair if every path returns the same JSON.
    const bodies = await Promise.all(paths.map((p) => fetchOnce(p.port, p.request)));
    const canonical = (s: string) => JSON.stringify(JSON.parse(s));
    for (const [i, b] of bodies.entries()) {
      if (canonical(b) !== canonical(bodies[0])) throw new Error(`${paths[i].name} answered ${b}, ${paths[0].name} answered ${bodies[0]}`);
    }

    const rounds: PeerResult["rounds"] = {};
    const at1: Record<string, number[]> = {};
    const measure = async (p: (typeof paths)[number], connections: number, seconds: number) => {
      const before = p.pids.reduce((n, pid) => n + cpuUs(pid), 0);
      const r = await runWrk({ cpu: LOAD_CPU, port: p.port, request: p.request, connections, seconds, kind: p.name });
      const used = p.pids.reduce((n, pid) => n + cpuUs(pid), 0) - before;
      return { ...r, cpuUs: used / Math.max(1, r.codes.ok ?? 0) };
    };
    // Warm-up: JIT, connection pools and the backends' channels must not count.
    for (const p of paths) await measure(p, opts.connections, 1);
    for (let r = 0; r < opts.rounds; r++) {
      for (let i = 0; i < paths.length; i++) {
        const p = paths[(i + r) % paths.length];
        (rounds[p.name] ??= []).push(await measure(p, opts.connections, opts.seconds));
      }
      opts.progress?.(`peer round ${r + 1}/${opts.rounds} done`);
    }
    if (opts.singleInFlight) {
      for (let r = 0; r < opts.rounds; r++) {
        for (let i = 0; i < paths.length; i++) {
          const p = paths[(i + r) % paths.length];
          const one = await measure(p, 1, Math.max(1, Math.round(opts.seconds / 2)));
          (at1[p.name] ??= []).push(one.p50);
          (rounds[`${p.name} @1`] ??= []).push(one);
        }
      }
      opts.progress?.("peer 1-in-flight rounds done");
    }
    const summary: Record<string, PeerSummary> = {};
    for (const p of paths) {
      const rs = rounds[p.name];
      const all = [...rs, ...(rounds[`${p.name} @1`] ?? [])];
      summary[p.name] = {
        rps: median(rs.map((x) => x.rps)),
        p50: median(rs.map((x) => x.p50)),
        p99: median(rs.map((x) => x.p99)),
        p50At1: at1[p.name] ? median(at1[p.name]) : undefined,
        cpuUs: median(rs.map((x) => x.cpuUs)),
        failures: all.reduce((n, x) => n + Object.entries(x.codes).reduce((a, [c, v]) => a + (c === "ok" ? 0 : v), 0), 0),
      };
    }
    return { summary, rounds, body: bodies[0] };
  } finally {
    for (const p of procs.reverse()) await p.stop();
  }
}
