/**
 * A service's own database: embedded SQLite (better-sqlite3, a file per service) by default,
 * PostgreSQL by URL in production, one Kysely query layer over both. See database.ts for the
 * portable column conventions (integers, epoch-ms timestamps, 0/1 booleans, bytes).
 */
export { openDatabase, transaction, isUniqueViolation, blobType, type Database, type Dialect } from "./database.js";
export { migrate, DEFAULT_MIGRATION_TABLE, type Migration } from "./migrate.js";
