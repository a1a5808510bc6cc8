import { CatalogService } from "../../gen/catalog/v1/catalog_pb.js";
import type { Database } from "../../mesh/db/index.js";
import { createMeshServer, service, type MeshServer } from "../../mesh/server/index.js";
import { SqlCatalogRepository } from "./data/catalog-repository.js";
import { Catalog } from "./domain/catalog.js";
import { routes } from "./routes.js";

/** What the catalog server needs: its migrated database. */
export interface CatalogDeps {
  database: Database;
}

/** Builds the catalog's gRPC server, unstarted. */
export function build(deps: CatalogDeps): MeshServer {
  const catalog = new Catalog(new SqlCatalogRepository(deps.database));
  return createMeshServer({
    serviceName: "catalog",
    services: [service(CatalogService, routes(catalog))],
  });
}
