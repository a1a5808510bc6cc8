import { openDatabase } from "../../mesh/db/index.js";
import { Mesh, runService } from "../../mesh/runtime/index.js";
import { createLogger } from "../../mesh/telemetry/index.js";
import { startEventRelay } from "../../mesh/events/index.js";
import { loadConfig } from "./config.js";
import { migratePayments } from "./data/migrations.js";
import { SqlPaymentRepository } from "./data/payment-repository.js";
import { Payments } from "./domain/payments.js";
import { SimulatedProcessor } from "./domain/processor.js";
import { build } from "./server.js";

async function main(): Promise<void> {
  const config = loadConfig();
  const logger = createLogger({ service: config.runtime.serviceName, instance: config.runtime.instanceId });
  const database = await openDatabase(config.runtime.databaseUrl);
  await migratePayments(database);
  const mesh = new Mesh(config.runtime);
  // Without NATS_URL events stay in the outbox (see events.ts).
  const relay = startEventRelay({ database, natsUrl: config.runtime.natsUrl, domain: "payments", logger });
  const payments = new Payments(new SqlPaymentRepository(database), new SimulatedProcessor({ slowDelayMs: config.slowCardDelayMs }), {
    onEventsCommitted: relay.kick,
  });
  await runService({
    config: config.runtime,
    mesh,
    server: build({ payments }),
    onShutdown: async () => {
      await relay.stop();
      await database.close();
    },
  });
}

main().catch((err: unknown) => {
  process.stderr.write(`payments failed to start: ${err instanceof Error ? err.message : String(err)}\n`);
  process.exit(1);
});
