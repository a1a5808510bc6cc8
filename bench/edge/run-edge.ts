/**
 * Scenario 3: the gateway's Connect JSON path (gateway → Meshwork client → grpc-js backend) vs the
 * backend's own Connect JSON endpoint (connect-node over HTTP/1.1, the same impl). The gateway and
 * the backend share CPU 0; each round's load comes from wrk on CPU 1 (bench/edge/wrk.ts, the same
 * generator as scenario 7); rounds alternate direct/gateway.
 */
import { join } from "node:path";
import { startProcess, tsxArgs, waitFor, type ManagedProcess } from "../../mesh/infra/index.js";
import type { RoundResult } from "../hop/run-hop.js";
import { runWrk, type WrkRequest } from "./wrk.js";
import { median } from "../lib/stats.js";

/** Medians per path plus failures (non-200 responses and socket errors). */
export interface EdgeResult {
  direct: { rps: number; p50: number; p99: number; failures: number };
  gateway: { rps: number; p50: number; p99: number; failures: number };
  rounds: Record<string, RoundResult[]>;
}

const GET_PRODUCT: WrkRequest = {
  method: "POST",
  path: "/catalog.v1.CatalogService/GetProduct",
  body: '{"id":"p1"}',
  headers: { "Content-Type": "application/json", "Connect-Protocol-Version": "1" },
};

function pinned(cpu: number, file: string, args: string[]): ManagedProcess {
  return startProcess("taskset", ["-c", String(cpu), process.execPath, ...tsxArgs(file, ...args)]);
}

async function ready(p: ManagedProcess): Promise<number[]> {
  return waitFor(
    () => {
      if (p.proc.exitCode !== null) throw new Error(p.output());
      const m = /ready ([\d ]+)/.exec(p.output());
      return m ? m[1].trim().split(" ").map(Number) : undefined;
    },
    { what: "edge server ready", timeoutMs: 30_000 },
  );
}

/** Runs `rounds` interleaved rounds of `seconds` each with `connections` keep-alive connections. */
export async function runEdge(opts: { rounds: number; seconds: number; connections: number; progress?: (l: string) => void }): Promise<EdgeResult> {
  const backend = pinned(0, join(__dirname, "servers.ts"), ["backend"]);
  let gateway: ManagedProcess | undefined;
  try {
    const [grpcPort, httpPort] = await ready(backend);
    gateway = pinned(0, join(__dirname, "servers.ts"), ["gateway", String(grpcPort)]);
    const [gatewayPort] = await ready(gateway);
    const rounds: Record<string, RoundResult[]> = { direct: [], gateway: [] };
    const run = (port: number) => runWrk({ cpu: 1, port, request: GET_PRODUCT, connections: opts.connections, seconds: opts.seconds, kind: "edge" });
    for (let r = 0; r < opts.rounds; r++) {
      rounds.direct.push(await run(httpPort));
      rounds.gateway.push(await run(gatewayPort));
      opts.progress?.(`edge round ${r + 1}/${opts.rounds} done`);
    }
    const sum = (rs: RoundResult[]) => ({
      rps: median(rs.map((x) => x.rps)),
      p50: median(rs.map((x) => x.p50)),
      p99: median(rs.map((x) => x.p99)),
      failures: rs.reduce((n, x) => n + Object.entries(x.codes).reduce((a, [c, v]) => a + (c === "ok" ? 0 : v), 0), 0),
    });
    return { direct: sum(rounds.direct), gateway: sum(rounds.gateway), rounds };
  } finally {
    await gateway?.stop();
    await backend.stop();
  }
}
