import { migrate, openDatabase } from "../../mesh/db/index.js";
import { Mesh, runService } from "../../mesh/runtime/index.js";
import { loadConfig } from "./config.js";
import { CATALOG_MIGRATION_TABLE, catalogMigrations } from "./data/migrations.js";
import { build } from "./server.js";

async function main(): Promise<void> {
  const config = loadConfig();
  const database = await openDatabase(config.runtime.databaseUrl);
  await migrate(database, catalogMigrations, { table: CATALOG_MIGRATION_TABLE });
  const mesh = new Mesh(config.runtime);
  const server = build({ database });
  await runService({ config: config.runtime, mesh, server, onShutdown: () => database.close() });
}

main().catch((err: unknown) => {
  process.stderr.write(`catalog failed to start: ${err instanceof Error ? err.message : String(err)}\n`);
  process.exit(1);
});
