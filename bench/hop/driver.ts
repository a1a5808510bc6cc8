/**
 * Load driver for one round: `driver.ts <plain|connect|mesh|mesh-policy|mesh-core> <target> <concurrency> <durationMs>` keeps
 * `concurrency` calls in flight for the duration and prints one JSON line with the count of calls
 * by status and latency percentiles. Runs in its own process (pinned to its own core by the
 * orchestrator) so it does not starve the server.
 */
import { loadPackageDefinition, credentials, type GrpcObject, type ServiceClientConstructor, type Client } from "@grpc/grpc-js";
import { loadSync } from "@grpc/proto-loader";
import { createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { join } from "node:path";
import { CatalogService } from "../../gen/catalog/v1/catalog_pb.js";
import { Mesh } from "../../mesh/runtime/index.js";
import { createCallPolicy } from "../../mesh/policy/index.js";
import { startTelemetry } from "../../mesh/telemetry/index.js";
import { isMeshLayer, layerService } from "./layers.js";
import { quantile } from "../lib/stats.js";

const [kind, target, concurrencyArg, durationArg] = process.argv.slice(2);
const concurrency = Number(concurrencyArg);
const durationMs = Number(durationArg);
// 1.5 s: hundreds (loaded machine) to thousands of calls, enough for V8 to optimise either client.
const WARMUP_MS = 1_500;

async function makeCall(): Promise<{ call: () => Promise<void>; close: () => Promise<void> }> {
  if (kind === "plain") {
    const def = loadSync("catalog/v1/catalog.proto", { includeDirs: [join(__dirname, "../../proto")], longs: String, defaults: false });
    const pkg = loadPackageDefinition(def) as GrpcObject;
    const Ctor = ((pkg.catalog as GrpcObject).v1 as GrpcObject).CatalogService as ServiceClientConstructor;
    const client = new Ctor(target, credentials.createInsecure()) as unknown as Client & { getProduct: (req: unknown, cb: (e: Error | null) => void) => void };
    return {
      call: () => new Promise<void>((res, rej) => client.getProduct({ id: "p1" }, (e) => (e ? rej(e) : res()))),
      close: async () => client.close(),
    };
  }
  if (kind === "connect") {
    // connect-node's gRPC client over h2c, no Meshwork policies: the naive stack's client side.
    const client = createClient(CatalogService, createGrpcTransport({ baseUrl: `http://${target}` }));
    return { call: async () => void (await client.getProduct({ id: "p1" })), close: async () => undefined };
  }
  if (!isMeshLayer(kind)) throw new Error(`unknown kind ${kind}`);
  // Telemetry as every Meshwork service has it (runService starts it): spans, metrics, context.
  if (kind === "mesh") startTelemetry({ serviceName: "benchdriver", instanceId: `benchdriver-${process.pid}` });
  const mesh = new Mesh({
    etcdEndpoints: [target],
    // mesh: the default policy, instrumented; mesh-policy: the same policy without telemetry; mesh-core: none.
    policyFor: kind === "mesh" ? undefined : kind === "mesh-policy" ? (service) => createCallPolicy({ service }) : () => undefined,
    interceptors: kind === "mesh" ? undefined : [],
  });
  const client = createClient(CatalogService, mesh.transport(layerService(kind)));
  await client.getProduct({ id: "warm" });
  return { call: async () => void (await client.getProduct({ id: "p1" })), close: () => mesh.close() };
}

async function main() {
  const { call, close } = await makeCall();
  // Warm up connections, then the JIT at the round's concurrency: each round is a fresh driver
  // process, and a cold client would charge compilation to the path with more JavaScript.
  for (let i = 0; i < 200; i++) await call();
  const warmEnd = Date.now() + WARMUP_MS;
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (Date.now() < warmEnd) await call().catch(() => undefined);
    }),
  );
  const latencies: number[] = [];
  const codes: Record<string, number> = {};
  // Tells the orchestrator when to read the server's CPU time (bench/hop/run-hop.ts).
  process.stdout.write("measure-start\n");
  const end = Date.now() + durationMs;
  const cpu0 = process.cpuUsage();
  const started = process.hrtime.bigint();
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (Date.now() < end) {
        const t0 = process.hrtime.bigint();
        try {
          await call();
          codes.ok = (codes.ok ?? 0) + 1;
        } catch (e) {
          const k = String((e as { code?: unknown }).code ?? "error");
          codes[k] = (codes[k] ?? 0) + 1;
        }
        latencies.push(Number(process.hrtime.bigint() - t0) / 1e6);
      }
    }),
  );
  const elapsedS = Number(process.hrtime.bigint() - started) / 1e9;
  const cpu = process.cpuUsage(cpu0);
  process.stdout.write("measure-end\n");
  await close();
  // CPU of this process (the client side of the hop plus the driver's own loop) per call.
  const driverCpuUs = (cpu.user + cpu.system) / Math.max(1, latencies.length);
  process.stdout.write(
    JSON.stringify({ kind, rps: (codes.ok ?? 0) / elapsedS, p50: quantile(latencies, 0.5), p99: quantile(latencies, 0.99), calls: latencies.length, driverCpuUs, codes }) + "\n",
  );
  process.exit(0);
}
void main();
