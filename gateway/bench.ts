import { create } from "@bufbuild/protobuf";
import type { Transport } from "@connectrpc/connect";
import { execFileSync, spawn, type ChildProcess } from "node:child_process";
import * as net from "node:net";
import { CatalogService, GetProductResponseSchema } from "../gen/catalog/v1/catalog_pb.js";
import { createMeshTransport, staticEndpoints } from "../mesh/client/index.js";
import { startTestGrpcServer } from "../mesh/testing/grpc-server.js";
import { build } from "./server.js";

/**
 * Side-by-side throughput of the gateway's fast path and its connect-node path: a grpc-js catalog
 * backend and the gateway share one core (taskset), the load generator runs on the other.
 *
 *   npx tsx gateway/bench.ts [seconds per round, default 5] [connections, default 32] [stub]
 *
 * With `stub` the gateway's transport answers at once in-process: the gateway's own cost.
 * Rounds alternate fast/connect for Connect JSON POST and REST GET; medians are reported with the
 * gateway's CPU per request. Loopback only.
 */

const SECRET = "bench-secret-that-is-long-enough-000000000000";

async function backend(): Promise<void> {
  const s = await startTestGrpcServer(CatalogService, {
    getProduct: (req) => ({ product: { id: req.id, name: "Bench product", price: { currencyCode: "EUR", amountMinor: 1999n }, active: true } }),
  });
  process.stdout.write(`${s.port}\n`);
}

async function gateway(backendPort: string, fast: string): Promise<void> {
  // Backend port "stub": answer in-process, to measure the gateway's own cost without grpc-js.
  const answer = create(GetProductResponseSchema, { product: { id: "p1", name: "Bench product", price: { currencyCode: "EUR", amountMinor: 1999n }, active: true } });
  const stub = { unary: async () => ({ message: answer }) } as unknown as Transport;
  const t = backendPort === "stub" ? stub : createMeshTransport({ endpoints: staticEndpoints(`127.0.0.1:${backendPort}`), serviceName: "catalog" });
  const g = build({ transportFor: () => t, jwt: { secret: SECRET }, identityKey: SECRET, rateLimit: { rps: 0, burst: 1 }, fastPath: fast === "true" });
  const port = await g.listen(0, "127.0.0.1");
  process.stdout.write(`${port}\n`);
  // A clean exit lets `node --cpu-prof` write its profile.
  process.on("SIGINT", () => process.exit(0));
  // The driver asks for CPU time between rounds.
  process.stdin.on("data", () => {
    const u = process.cpuUsage();
    process.stdout.write(`${u.user + u.system}\n`);
  });
}

/** Keeps `connections` sockets busy with one request each for `seconds`; returns completed responses. */
function load(port: number, request: Buffer, connections: number, seconds: number): Promise<{ ok: number; other: number }> {
  const end = Date.now() + seconds * 1000;
  let ok = 0;
  let other = 0;
  const one = () =>
    new Promise<void>((resolve) => {
      const socket = net.connect(port, "127.0.0.1");
      socket.setNoDelay(true);
      let buf = "";
      socket.on("connect", () => socket.write(request));
      socket.on("data", (chunk: Buffer) => {
        buf += chunk.toString("latin1");
        for (;;) {
          const head = buf.indexOf("\r\n\r\n");
          if (head < 0) return;
          const len = Number(/content-length: (\d+)/i.exec(buf.slice(0, head))?.[1] ?? 0);
          if (buf.length < head + 4 + len) return;
          if (buf.startsWith("HTTP/1.1 200")) ok++;
          else other++;
          buf = buf.slice(head + 4 + len);
          if (Date.now() >= end) {
            socket.end();
            return;
          }
          socket.write(request);
        }
      });
      socket.on("close", () => resolve());
      socket.on("error", () => resolve());
    });
  return Promise.all(Array.from({ length: connections }, one)).then(() => ({ ok, other }));
}

function startChild(args: string[], core: string): Promise<{ child: ChildProcess; port: number; lines: AsyncIterator<string> }> {
  const child = spawn("taskset", ["-c", core, process.execPath, require.resolve("tsx/cli"), __filename, ...args], { stdio: ["pipe", "pipe", "inherit"] });
  const lines = (async function* () {
    let rest = "";
    for await (const chunk of child.stdout!) {
      rest += String(chunk);
      let i: number;
      while ((i = rest.indexOf("\n")) >= 0) {
        yield rest.slice(0, i);
        rest = rest.slice(i + 1);
      }
    }
  })();
  return lines.next().then((r) => ({ child, port: Number(r.value), lines }));
}

async function driver(seconds: number, connections: number, stub: boolean): Promise<void> {
  const cores = Number(execFileSync("nproc").toString().trim());
  const serverCore = "0";
  if (cores < 2) throw new Error("needs 2 cores: one for gateway+backend, one for the load");
  const be = stub ? { child: spawn("true"), port: "stub" } : await startChild(["backend"], serverCore);
  const results: Record<string, Array<{ rps: number; cpuUs: number }>> = {};
  const connectJson = (port: number) =>
    Buffer.from(
      `POST /catalog.v1.CatalogService/GetProduct HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nContent-Type: application/json\r\nConnect-Protocol-Version: 1\r\nContent-Length: 11\r\n\r\n{"id":"p1"}`,
    );
  const restGet = (port: number) => Buffer.from(`GET /v1/products/p1 HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\n\r\n`);
  const gateways: Record<string, Awaited<ReturnType<typeof startChild>>> = {
    fast: await startChild(["gateway", String(be.port), "true"], serverCore),
    connect: await startChild(["gateway", String(be.port), "false"], serverCore),
  };
  const cpu = async (g: Awaited<ReturnType<typeof startChild>>) => {
    g.child.stdin!.write("\n");
    return Number((await g.lines.next()).value);
  };
  // Warm-up: JIT and connection setup must not count.
  for (const g of Object.values(gateways)) {
    await load(g.port, connectJson(g.port), connections, 1);
    await load(g.port, restGet(g.port), connections, 1);
  }
  for (let round = 0; round < 3; round++) {
    for (const [path, g] of Object.entries(gateways)) {
      for (const [kind, req] of [
        ["connect-json", connectJson(g.port)],
        ["rest-get", restGet(g.port)],
      ] as const) {
        const c0 = await cpu(g);
        const r = await load(g.port, req, connections, seconds);
        const c1 = await cpu(g);
        if (r.other > 0) throw new Error(`${path} ${kind}: ${r.other} non-200 responses`);
        (results[`${kind} ${path}`] ??= []).push({ rps: r.ok / seconds, cpuUs: (c1 - c0) / r.ok });
      }
    }
  }
  const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
  for (const [name, rs] of Object.entries(results)) {
    process.stdout.write(`${name.padEnd(22)} ${median(rs.map((r) => r.rps)).toFixed(0).padStart(6)} req/s   gateway CPU ${median(rs.map((r) => r.cpuUs)).toFixed(0).padStart(4)} µs/request\n`);
  }
  for (const g of [...Object.values(gateways), be]) g.child.kill();
}

const [mode, ...args] = process.argv.slice(2);
if (mode === "backend") void backend();
else if (mode === "gateway") void gateway(args[0], args[1]);
else
  driver(Number(mode ?? 5), Number(args[0] ?? 32), args[1] === "stub").catch((e: unknown) => {
    process.stderr.write(`bench: ${(e as Error).message}\n`);
    process.exit(1);
  });
