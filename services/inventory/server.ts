import { InventoryService } from "../../gen/inventory/v1/inventory_pb.js";
import { createMeshServer, service, type MeshServer } from "../../mesh/server/index.js";
import type { Inventory } from "./domain/inventory.js";
import { routes } from "./routes.js";

/** What the inventory server needs. */
export interface InventoryDeps {
  inventory: Inventory;
}

/**
 * Builds the inventory's gRPC server, unstarted. When the drain stops accepting calls, open
 * WatchStock streams end with Unavailable (so clients re-watch on another replica) instead of
 * holding the shutdown for the whole grace period.
 */
export function build(deps: InventoryDeps): MeshServer {
  return createMeshServer({
    serviceName: "inventory",
    services: [service(InventoryService, routes(deps.inventory))],
    onDrainStep: (step) => {
      if (step === "stop-accepting") deps.inventory.closeWatches();
    },
  });
}
