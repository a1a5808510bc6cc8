import { connect } from "nats";
import { openDatabase } from "../../mesh/db/index.js";
import { ensureStreams, SHOP_STREAMS } from "../../mesh/events/index.js";
import { Mesh, runService } from "../../mesh/runtime/index.js";
import { createLogger } from "../../mesh/telemetry/index.js";
import { loadConfig } from "./config.js";
import { notificationConsumers } from "./consumers.js";
import { migrateNotifications } from "./data/migrations.js";
import { NotificationFeed } from "./domain/feed.js";
import { build } from "./server.js";

async function main(): Promise<void> {
  const config = loadConfig();
  const log = createLogger({ service: config.runtime.serviceName, instance: config.runtime.instanceId });
  const database = await openDatabase(config.runtime.databaseUrl);
  await migrateNotifications(database);
  // Reconnect for ever, 250 ms apart: the consumers ride out a broker restart.
  const nats = await connect({ servers: config.natsUrl, maxReconnectAttempts: -1, reconnectTimeWait: 250 });
  await ensureStreams(await nats.jetstreamManager(), SHOP_STREAMS);
  const feed = new NotificationFeed();
  const consumers = notificationConsumers({ nats, database, feed, logger: log });
  for (const c of consumers) await c.start();
  const mesh = new Mesh({ etcdEndpoints: config.runtime.etcdEndpoints });
  await runService({
    config: config.runtime,
    mesh,
    server: build({ database, feed }),
    onShutdown: async () => {
      for (const c of consumers) await c.stop();
      await nats.drain();
      await database.close();
    },
  });
}

main().catch((err: unknown) => {
  process.stderr.write(`notifications failed to start: ${err instanceof Error ? err.message : String(err)}\n`);
  process.exit(1);
});
