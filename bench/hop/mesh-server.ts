/** Meshwork: the same method served through createMeshServer + runService (health, reflection, registry). */
import { CatalogService } from "../../gen/catalog/v1/catalog_pb.js";
import { Mesh, readRuntimeConfig, runService } from "../../mesh/runtime/index.js";
import { createMeshServer, service } from "../../mesh/server/index.js";

async function main() {
  const config = readRuntimeConfig("benchhop");
  const mesh = new Mesh({ etcdEndpoints: config.etcdEndpoints });
  const server = createMeshServer({
    serviceName: "benchhop",
    services: [service(CatalogService, { getProduct: (req) => ({ product: { id: req.id, name: "mesh" } }) })],
  });
  const r = await runService({ config, mesh, server, log: () => undefined });
  process.stdout.write(`ready ${r.port}\n`);
}
void main();
