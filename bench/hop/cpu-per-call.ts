/**
 * CPU time per call of the hop with client and server in one process, for profiling:
 *
 *   npx tsx bench/hop/cpu-per-call.ts <plain|bare|mesh> [calls=20000] [concurrency=16]
 *
 * `plain`: proto-loader grpc-js client → grpc-js server. `bare`: the mesh adapter on both sides,
 * no policy, middleware or telemetry. `mesh`: what a Meshwork service gets by default —
 * createMeshServer's middleware, the default call policy, the tracing interceptor and the
 * OpenTelemetry SDK started as runService does. Prints one JSON line with µs of CPU per call
 * (user + system, both sides together). Run it under `node --cpu-prof` or callgrind to see where.
 *
 *   npx tsx bench/hop/cpu-per-call.ts client [calls=20000] [rounds=5]
 *
 * The client alone, as the hop bench's driver runs it: each round runs a plain grpc-js client
 * process and a Meshwork client process (default policy, tracing interceptor, SDK started) one
 * after the other against the plain server (plain-server.ts) in a child process, and reads only
 * the client process's CPU. Separate processes because what one client enables (the
 * AsyncLocalStorage hooks) taxes every promise of its process, a plain client's included.
 * Prints the medians and the median of the per-round ratios. `client-plain` / `client-mesh` run
 * one side (for `node --cpu-prof`).
 */
import { createClient } from "@connectrpc/connect";
import { loadPackageDefinition, credentials, Server, ServerCredentials, type Client, type GrpcObject, type ServiceClientConstructor } from "@grpc/grpc-js";
import { loadSync } from "@grpc/proto-loader";
import { join } from "node:path";
import { CatalogService } from "../../gen/catalog/v1/catalog_pb.js";
import { createMeshTransport, staticEndpoints } from "../../mesh/client/index.js";
import { startProcess, tsxArgs, waitFor } from "../../mesh/infra/index.js";
import { grpcImplementation, grpcServiceDefinition } from "../../mesh/grpc/index.js";
import { defaultPolicy } from "../../mesh/runtime/mesh.js";
import { createMeshServer, service } from "../../mesh/server/index.js";
import { startTelemetry, tracingInterceptor, recordEjection } from "../../mesh/telemetry/index.js";

const [kind = "mesh", callsArg = "20000", concArg = "16"] = process.argv.slice(2);
const calls = Number(callsArg);
const concurrency = Number(concArg);

async function setup(kind: string): Promise<{ call: () => Promise<unknown>; close: () => void }> {
  if (kind === "plain") {
    const def = loadSync("catalog/v1/catalog.proto", { includeDirs: [join(__dirname, "../../proto")], longs: String, defaults: false });
    const pkg = loadPackageDefinition(def) as GrpcObject;
    const Ctor = ((pkg.catalog as GrpcObject).v1 as GrpcObject).CatalogService as ServiceClientConstructor;
    const server = new Server();
    server.addService(Ctor.service, {
      getProduct: (call: { request: { id: string } }, cb: (e: null, r: unknown) => void) => cb(null, { product: { id: call.request.id, name: "plain" } }),
    });
    const port = await new Promise<number>((res, rej) => server.bindAsync("127.0.0.1:0", ServerCredentials.createInsecure(), (e, p) => (e ? rej(e) : res(p))));
    const client = new Ctor(`127.0.0.1:${port}`, credentials.createInsecure()) as unknown as Client & { getProduct: (r: unknown, cb: (e: Error | null) => void) => void };
    return {
      call: () => new Promise<void>((res, rej) => client.getProduct({ id: "p1" }, (e) => (e ? rej(e) : res()))),
      close: () => (client.close(), server.forceShutdown()),
    };
  }
  const impl = { getProduct: (req: { id: string }) => ({ product: { id: req.id, name: "mesh" } }) };
  // HOP_PARTS picks the Meshwork layers one by one (for attributing costs): sdk, server, policy, trace.
  const parts = new Set((process.env.HOP_PARTS ?? (kind === "bare" ? "" : "sdk,server,policy,trace")).split(",").filter(Boolean));
  let address: string;
  let stop: () => void;
  if (parts.has("sdk")) startTelemetry({ serviceName: "benchhop", instanceId: "cpu-per-call" });
  if (!parts.has("server")) {
    const server = new Server();
    server.addService(grpcServiceDefinition(CatalogService), grpcImplementation(CatalogService, impl));
    const port = await new Promise<number>((res, rej) => server.bindAsync("127.0.0.1:0", ServerCredentials.createInsecure(), (e, p) => (e ? rej(e) : res(p))));
    address = `127.0.0.1:${port}`;
    stop = () => server.forceShutdown();
  } else {
    const server = createMeshServer({ serviceName: "benchhop", services: [service(CatalogService, impl)] });
    address = `127.0.0.1:${await server.listen(0, "127.0.0.1")}`;
    stop = () => server.forceShutdown();
  }
  const transport = createMeshTransport({
    endpoints: staticEndpoints(address),
    serviceName: "benchhop",
    policy: parts.has("policy") ? defaultPolicy("benchhop") : undefined,
    interceptors: parts.has("trace") ? [tracingInterceptor()] : [],
    balancer: { onEjection: recordEjection },
  });
  const client = createClient(CatalogService, transport);
  return { call: () => client.getProduct({ id: "p1" }), close: () => (transport.close(), stop()) };
}

async function run(call: () => Promise<unknown>, n: number): Promise<void> {
  let left = n;
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (left-- > 0) await call();
    }),
  );
}

/** CPU µs per call of `call` over `n` calls. */
async function cpuPerCall(call: () => Promise<unknown>, n: number): Promise<number> {
  const cpu0 = process.cpuUsage();
  await run(call, n);
  const cpu = process.cpuUsage(cpu0);
  return (cpu.user + cpu.system) / n;
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

/**
 * `mix`: plain and Meshwork in one process, in alternating blocks, so that a busy machine slows
 * both alike; the ratio of the two is what to compare between code versions. (The plain side pays
 * for the AsyncLocalStorage hooks the Meshwork side enables, so its absolute number is not plain's.)
 */
async function mix() {
  const plain = await setup("plain");
  const mesh = await setup("mesh");
  const block = Math.max(500, Math.floor(calls / 10));
  await run(plain.call, 2_000);
  await run(mesh.call, 5_000);
  const p: number[] = [];
  const m: number[] = [];
  const r: number[] = [];
  for (let i = 0; i < 10; i++) {
    const a = await cpuPerCall(plain.call, block);
    const b = await cpuPerCall(mesh.call, block);
    p.push(a);
    m.push(b);
    r.push(b / a);
  }
  plain.close();
  mesh.close();
  process.stdout.write(JSON.stringify({ kind: "mix", plainUs: median(p), meshUs: median(m), ratio: median(r) }) + "\n");
  process.exit(0);
}

/** One client process against a plain server in a child process; prints its own CPU per call. */
async function clientOnly(side: "plain" | "mesh") {
  const server = startProcess(process.execPath, tsxArgs(join(__dirname, "plain-server.ts")));
  try {
    const port = await waitFor(() => /ready (\d+)/.exec(server.output())?.[1], { what: "plain server ready", timeoutMs: 60_000 });
    const address = `127.0.0.1:${port}`;
    let call: () => Promise<unknown>;
    let close: () => void;
    if (side === "plain") {
      const def = loadSync("catalog/v1/catalog.proto", { includeDirs: [join(__dirname, "../../proto")], longs: String, defaults: false });
      const Ctor = (((loadPackageDefinition(def) as GrpcObject).catalog as GrpcObject).v1 as GrpcObject).CatalogService as ServiceClientConstructor;
      const client = new Ctor(address, credentials.createInsecure()) as unknown as Client & { getProduct: (r: unknown, cb: (e: Error | null) => void) => void };
      call = () => new Promise<void>((res, rej) => client.getProduct({ id: "p1" }, (e) => (e ? rej(e) : res())));
      close = () => client.close();
    } else {
      // As the driver's Mesh client: telemetry started, the default policy, the tracing interceptor.
      startTelemetry({ serviceName: "benchdriver", instanceId: "cpu-per-call-client" });
      const transport = createMeshTransport({ endpoints: staticEndpoints(address), serviceName: "benchhop", policy: defaultPolicy("benchhop"), interceptors: [tracingInterceptor()], balancer: { onEjection: recordEjection } });
      const client = createClient(CatalogService, transport);
      call = () => client.getProduct({ id: "p1" });
      close = () => transport.close();
    }
    await run(call, Math.min(5_000, calls));
    const us = await cpuPerCall(call, calls);
    close();
    process.stdout.write(JSON.stringify({ kind: `client-${side}`, calls, cpuUsPerCall: us }) + "\n");
  } finally {
    await server.kill();
  }
  process.exit(0);
}

/** Alternates plain and Meshwork client processes (see the header); prints medians and the median ratio. */
async function clientRounds(rounds: number) {
  const once = async (side: string): Promise<number> => {
    const child = startProcess(process.execPath, tsxArgs(__filename, `client-${side}`, String(calls), "16"));
    const code = await new Promise<number | null>((res) => child.proc.once("exit", res));
    const m = /"cpuUsPerCall":([\d.]+)/.exec(child.output());
    if (code !== 0 || !m) throw new Error(`client-${side} failed (${code}): ${child.output()}`);
    return Number(m[1]);
  };
  const p: number[] = [];
  const m: number[] = [];
  const r: number[] = [];
  for (let i = 0; i < rounds; i++) {
    p.push(await once("plain"));
    m.push(await once("mesh"));
    r.push(m[i] / p[i]);
  }
  process.stdout.write(JSON.stringify({ kind: "client", plainUs: median(p), meshUs: median(m), ratio: median(r), ratios: r.map((x) => Number(x.toFixed(2))) }) + "\n");
  process.exit(0);
}

async function main() {
  if (kind === "mix") return mix();
  // In `client` mode the third argument is the number of rounds; the clients keep 16 in flight.
  if (kind === "client") return clientRounds(process.argv[4] === undefined ? 5 : Number(process.argv[4]));
  if (kind === "client-plain" || kind === "client-mesh") return clientOnly(kind === "client-plain" ? "plain" : "mesh");
  const { call, close } = await setup(kind);
  // Warm-up: JIT, connection, lazily built definitions and caches.
  await run(call, Math.min(5_000, calls));
  const cpu0 = process.cpuUsage();
  const t0 = process.hrtime.bigint();
  await run(call, calls);
  const wallS = Number(process.hrtime.bigint() - t0) / 1e9;
  const cpu = process.cpuUsage(cpu0);
  close();
  process.stdout.write(JSON.stringify({ kind, parts: [...(process.env.HOP_PARTS ?? "").split(",")].join("+"), calls, concurrency, cpuUsPerCall: (cpu.user + cpu.system) / calls, wallRps: calls / wallS }) + "\n");
  process.exit(0);
}
void main();
