/**
 * Meshwork: the hop's method served through createMeshServer + runService (health, reflection,
 * registry), with the layers of `mesh-server.ts <layer>` (bench/hop/layers.ts).
 */
import { CatalogService } from "../../gen/catalog/v1/catalog_pb.js";
import { Mesh, readRuntimeConfig, runService } from "../../mesh/runtime/index.js";
import { createMeshServer, service } from "../../mesh/server/index.js";
import { isMeshLayer, layerService } from "./layers.js";

async function main() {
  const layer = process.argv[2] ?? "mesh";
  if (!isMeshLayer(layer)) throw new Error(`unknown layer ${layer}`);
  const config = readRuntimeConfig(layerService(layer));
  const mesh = new Mesh({ etcdEndpoints: config.etcdEndpoints });
  const server = createMeshServer({
    serviceName: config.serviceName,
    services: [service(CatalogService, { getProduct: (req) => ({ product: { id: req.id, name: "mesh" } }) })],
    concurrency: layer === "mesh-core" ? false : undefined,
    telemetry: layer === "mesh",
  });
  const r = await runService({ config, mesh, server, log: () => undefined });
  process.stdout.write(`ready ${r.port}\n`);
}
void main();
