import { Code, ConnectError } from "@connectrpc/connect";
import { Migrator, type Kysely } from "kysely";
import type { Database, Dialect } from "./database.js";

/** A versioned migration; ids sort lexicographically ("0001_init") and are never renamed once shipped. */
export interface Migration {
  id: string;
  up(db: Kysely<any>, dialect: Dialect): Promise<void>;
}

/** History table of a service's own migrations; mesh modules pass their own `table`. */
export const DEFAULT_MIGRATION_TABLE = "schema_migrations";

/**
 * Applies the pending migrations in id order, each once, recording them in `table` (so mesh
 * modules and the service keep separate histories). Fails when a recorded migration is missing
 * from `migrations` or a new one sorts before the last applied one.
 *
 * Safe when several processes start at once. Kysely's Migrator does the work: on PostgreSQL it
 * holds a session advisory lock (pg_advisory_lock, one fixed id for every history table) and runs
 * the batch in one transaction; on SQLite our dialect makes the batch one BEGIN IMMEDIATE
 * transaction, which is the file-wide lock. Either way a migration that throws rolls back with
 * its batch and the error is rethrown.
 */
export async function migrate(database: Database, migrations: Migration[], opts: { table?: string } = {}): Promise<void> {
  const table = opts.table ?? DEFAULT_MIGRATION_TABLE;
  const byId: Record<string, { up(db: Kysely<any>): Promise<void> }> = {};
  for (const m of migrations) {
    if (byId[m.id]) throw new ConnectError(`migration id ${m.id} appears twice in the list for table ${table}`, Code.InvalidArgument);
    byId[m.id] = { up: (db) => m.up(db, database.dialect) };
  }
  const migrator = new Migrator({
    db: database.db,
    provider: { getMigrations: async () => byId },
    migrationTableName: table,
    migrationLockTableName: `${table}_lock`,
  });
  const { error, results } = await migrator.migrateToLatest();
  if (error) {
    const failed = results?.find((r) => r.status === "Error")?.migrationName;
    const cause = error instanceof Error ? error.message : String(error);
    const message = failed ? `migration ${failed} (table ${table}) failed: ${cause}` : `migrating table ${table} failed: ${cause}`;
    throw new ConnectError(message, Code.Internal, undefined, undefined, error);
  }
}
