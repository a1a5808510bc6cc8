import { connect, type NatsConnection } from "nats";
import { CatalogService } from "../../gen/catalog/v1/catalog_pb.js";
import { InventoryService } from "../../gen/inventory/v1/inventory_pb.js";
import { PaymentService } from "../../gen/payments/v1/payments_pb.js";
import { openDatabase } from "../../mesh/db/index.js";
import { ensureStreams, OutboxRelay, SHOP_STREAMS, type EventConsumer } from "../../mesh/events/index.js";
import { Mesh, runService } from "../../mesh/runtime/index.js";
import { createLogger } from "../../mesh/telemetry/index.js";
import { loadConfig } from "./config.js";
import { migrateOrders } from "./data/migrations.js";
import { paymentEventsConsumer } from "./payment-events.js";
import { build, createOrders } from "./server.js";

async function main(): Promise<void> {
  const config = loadConfig();
  const log = createLogger({ service: config.runtime.serviceName, instance: config.runtime.instanceId });
  const database = await openDatabase(config.runtime.databaseUrl);
  await migrateOrders(database);
  const mesh = new Mesh({ etcdEndpoints: config.runtime.etcdEndpoints });
  // Without NATS_URL events wait in the outbox until a broker is configured.
  // Reconnect for ever, 250 ms apart: the relay and consumer ride out a broker restart.
  const nats: NatsConnection | undefined = config.runtime.natsUrl
    ? await connect({ servers: config.runtime.natsUrl, maxReconnectAttempts: -1, reconnectTimeWait: 250 })
    : undefined;
  const relay = new OutboxRelay({ database, nats: () => nats, logger: log });
  const orders = createOrders({
    database,
    clients: { catalog: mesh.client(CatalogService), inventory: mesh.client(InventoryService), payments: mesh.client(PaymentService) },
    instanceId: config.runtime.instanceId,
    logger: log,
    timing: { leaseMs: config.sagaLeaseMs },
    onEventsCommitted: () => relay.kick(),
  });
  let consumer: EventConsumer | undefined;
  if (nats) {
    await ensureStreams(await nats.jetstreamManager(), SHOP_STREAMS);
    consumer = paymentEventsConsumer(nats, database, log);
    await consumer.start();
  }
  relay.start();
  orders.saga.start();
  await runService({
    config: config.runtime,
    mesh,
    server: build(orders),
    onShutdown: async () => {
      await orders.saga.stop();
      await consumer?.stop();
      await relay.stop();
      await nats?.drain();
      await database.close();
    },
  });
}

main().catch((err: unknown) => {
  process.stderr.write(`orders failed to start: ${err instanceof Error ? err.message : String(err)}\n`);
  process.exit(1);
});
