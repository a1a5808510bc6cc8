import { openDatabase } from "../../mesh/db/index.js";
import { Mesh, runService } from "../../mesh/runtime/index.js";
import { createLogger } from "../../mesh/telemetry/index.js";
import { startEventRelay } from "../../mesh/events/index.js";
import { loadConfig } from "./config.js";
import { SqlInventoryRepository } from "./data/inventory-repository.js";
import { migrateInventory } from "./data/migrations.js";
import { Inventory } from "./domain/inventory.js";
import { ExpirySweeper } from "./domain/sweeper.js";
import { build } from "./server.js";

async function main(): Promise<void> {
  const config = loadConfig();
  const logger = createLogger({ service: config.runtime.serviceName, instance: config.runtime.instanceId });
  const database = await openDatabase(config.runtime.databaseUrl);
  await migrateInventory(database);
  const mesh = new Mesh(config.runtime);
  // Without NATS_URL events stay in the outbox (see events.ts).
  const relay = startEventRelay({ database, natsUrl: config.runtime.natsUrl, domain: "inventory", logger });
  const inventory = new Inventory(new SqlInventoryRepository(database), { lowStockThreshold: config.lowStockThreshold, onEventsCommitted: relay.kick });
  const sweeper = new ExpirySweeper(inventory, config.sweepIntervalMs, logger).start();
  await runService({
    config: config.runtime,
    mesh,
    server: build({ inventory }),
    onShutdown: async () => {
      await sweeper.stop();
      await relay.stop();
      await database.close();
    },
  });
}

main().catch((err: unknown) => {
  process.stderr.write(`inventory failed to start: ${err instanceof Error ? err.message : String(err)}\n`);
  process.exit(1);
});
