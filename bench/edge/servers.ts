/**
 * Processes of the edge scenario (scenario 3 of bench/run.ts):
 *
 *   servers.ts backend           grpc-js catalog (mesh adapter) + the same impl as Connect JSON over HTTP/1.1
 *   servers.ts gateway <port>    the gateway (fast path on, default) forwarding to the backend's gRPC port
 *
 * Each prints `ready <port> [<port>]` once listening. The gateway is built as gateway/bench.ts
 * builds it (that file runs its CLI on import, so its pieces cannot be imported).
 */
import { connectNodeAdapter } from "@connectrpc/connect-node";
import * as http from "node:http";
import type { AddressInfo } from "node:net";
import { CatalogService } from "../../gen/catalog/v1/catalog_pb.js";
import { createMeshTransport, staticEndpoints } from "../../mesh/client/index.js";
import { startTestGrpcServer } from "../../mesh/testing/grpc-server.js";
import { build } from "../../gateway/server.js";

const SECRET = "bench-secret-that-is-long-enough-000000000000";
const impl = {
  getProduct: (req: { id: string }) => ({ product: { id: req.id, name: "Bench product", price: { currencyCode: "EUR", amountMinor: 1999n }, active: true } }),
};

async function backend(): Promise<void> {
  const grpc = await startTestGrpcServer(CatalogService, impl);
  const server = http.createServer(connectNodeAdapter({ routes: (router) => router.service(CatalogService, impl) }));
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  process.stdout.write(`ready ${grpc.port} ${(server.address() as AddressInfo).port}\n`);
}

async function gateway(backendPort: string): Promise<void> {
  const t = createMeshTransport({ endpoints: staticEndpoints(`127.0.0.1:${backendPort}`), serviceName: "catalog" });
  // rps 0: rate limiting off, the load would otherwise be refused with 429.
  const g = build({ transportFor: () => t, jwt: { secret: SECRET }, identityKey: SECRET, rateLimit: { rps: 0, burst: 1 } });
  process.stdout.write(`ready ${await g.listen(0, "127.0.0.1")}\n`);
}

const [mode, arg] = process.argv.slice(2);
process.on("SIGTERM", () => process.exit(0));
(mode === "backend" ? backend() : gateway(arg)).catch((e: unknown) => {
  process.stderr.write(`${(e as Error).stack}\n`);
  process.exit(1);
});
