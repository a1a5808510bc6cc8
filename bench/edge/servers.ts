/**
 * Meshwork processes of the edge scenarios (3 and 7 of bench/run.ts):
 *
 *   servers.ts backend           a catalog-like Meshwork service (createMeshServer: tracing, RED
 *                                metrics, deadlines, load shedding; telemetry started) on grpc-js,
 *                                plus the same impl as Connect JSON over HTTP/1.1 (scenario 3's baseline)
 *   servers.ts gateway <port>    the gateway as gateway/main.ts runs it (runGateway: telemetry,
 *                                server spans, HTTP metrics, access log) forwarding to the backend's
 *                                gRPC port through a mesh transport with the default policy and
 *                                tracing interceptor (Mesh.transport without etcd discovery);
 *                                port `stub` answers in-process instead: the gateway's own cost
 *
 * Each prints `ready <port> [<port>]` once listening. The gateway's access log goes to the file in
 * MESHWORK_BENCH_LOG (default: /dev/null), not stdout: the bench parent would otherwise buffer
 * every line. Telemetry follows the standard variables (OTEL_SDK_DISABLED, OTEL_TRACES_SAMPLER,
 * LOG_LEVEL), which is how the bench measures what each part costs.
 */
import { connectNodeAdapter } from "@connectrpc/connect-node";
import * as http from "node:http";
import type { AddressInfo } from "node:net";
import pino from "pino";
import { create } from "@bufbuild/protobuf";
import type { Transport } from "@connectrpc/connect";
import { CatalogService, GetProductResponseSchema } from "../../gen/catalog/v1/catalog_pb.js";
import { createMeshTransport, staticEndpoints } from "../../mesh/client/index.js";
import { readRuntimeConfig } from "../../mesh/runtime/index.js";
import { defaultPolicy } from "../../mesh/runtime/mesh.js";
import { createMeshServer, service } from "../../mesh/server/index.js";
import { createLogger, startTelemetry, tracingInterceptor } from "../../mesh/telemetry/index.js";
import { loadConfig } from "../../gateway/config.js";
import { runGateway } from "../../gateway/run.js";
import { BENCH_PRODUCT } from "./product.js";

const SECRET = "bench-secret-that-is-long-enough-000000000000";
const impl = {
  getProduct: (req: { id: string }) => ({ product: { id: req.id, ...BENCH_PRODUCT } }),
};

async function backend(): Promise<void> {
  startTelemetry({ serviceName: "catalog", instanceId: `catalog-bench-${process.pid}` });
  const grpc = createMeshServer({ serviceName: "catalog", services: [service(CatalogService, impl)] });
  const grpcPort = await grpc.listen(0, "127.0.0.1");
  const server = http.createServer(connectNodeAdapter({ routes: (router) => router.service(CatalogService, impl) }));
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  process.stdout.write(`ready ${grpcPort} ${(server.address() as AddressInfo).port}\n`);
  // A clean exit on SIGINT lets `node --cpu-prof` write its profile.
  process.on("SIGINT", () => process.exit(0));
}

async function gateway(backendPort: string): Promise<void> {
  const runtime = readRuntimeConfig("gateway", { MESHWORK_INSTANCE_ID: `gateway-bench-${process.pid}` });
  const config = loadConfig({
    MESHWORK_JWT_SECRET: SECRET,
    MESHWORK_IDENTITY_KEY: SECRET,
    MESHWORK_GATEWAY_PORT: "0",
    MESHWORK_GATEWAY_HOST: "127.0.0.1",
    // Rate limiting off: the load comes from one address and would be refused with 429.
    MESHWORK_RATE_LIMIT_RPS: "0",
    MESHWORK_GATEWAY_FAST_PATH: process.env.MESHWORK_GATEWAY_FAST_PATH ?? "true",
  });
  const answer = create(GetProductResponseSchema, { product: { id: "p1", ...BENCH_PRODUCT } });
  const stub = { unary: async () => ({ message: answer }) } as unknown as Transport;
  const transport = backendPort === "stub" ? stub : createMeshTransport({
    endpoints: staticEndpoints(`127.0.0.1:${backendPort}`),
    serviceName: "catalog",
    policy: defaultPolicy("catalog"),
    interceptors: [tracingInterceptor()],
  });
  // Buffered asynchronous writes (pino's recommended production destination) to a file.
  const destination = pino.destination({ dest: process.env.MESHWORK_BENCH_LOG || "/dev/null", sync: false, minLength: 4096 });
  const logger = createLogger({ service: "gateway", instance: runtime.instanceId, destination });
  const g = await runGateway({ config, runtime, transportFor: () => transport, logger });
  process.stdout.write(`ready ${g.port}\n`);
  // A clean exit on SIGINT lets `node --cpu-prof` write its profile.
  process.on("SIGINT", () => {
    destination.flushSync();
    process.exit(0);
  });
}

const [mode, arg] = process.argv.slice(2);
process.on("SIGTERM", () => process.exit(0));
(mode === "backend" ? backend() : gateway(arg)).catch((e: unknown) => {
  process.stderr.write(`${(e as Error).stack}\n`);
  process.exit(1);
});
