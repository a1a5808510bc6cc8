import BetterSqlite3 from "better-sqlite3";
import { Code, ConnectError } from "@connectrpc/connect";
import { Kysely, PostgresDialect, sql, type Transaction } from "kysely";
import { mkdirSync } from "node:fs";
import path from "node:path";
import type * as Pg from "pg";
import { MeshSqliteDialect, StripRowLocksPlugin } from "./sqlite.js";

/*
 * Portable conventions — the same service code runs on SQLite and PostgreSQL when it sticks to them:
 * - Integers: int8/bigint/count(*) come back as JS numbers on both (better-sqlite3 returns numbers;
 *   PostgreSQL's int8 is parsed to a number here, and a value beyond ±2^53 fails the query rather
 *   than losing precision). Keep 64-bit values within Number.MAX_SAFE_INTEGER.
 * - Timestamps: epoch milliseconds in a `bigint` column (Date.now()). They compare, sort and add
 *   identically on both; SQLite has no timestamp type, and timestamptz would come back as a Date on
 *   PostgreSQL but as text on SQLite.
 * - Booleans: `integer` 0/1. better-sqlite3 cannot bind JS booleans and SQLite has no boolean type.
 * - Bytes: `blobType(dialect)` (bytea | blob); both drivers return a Buffer and bind a Buffer.
 * - Money and other exact decimals: integer minor units (PostgreSQL `numeric` comes back as a string,
 *   SQLite's as a float).
 * - Row locks: `.forUpdate()` is fine (stripped on SQLite, where the transaction already holds the
 *   write lock). Isolation differs: SQLite transactions are serialisable, PostgreSQL runs READ
 *   COMMITTED — use `.forUpdate()` or conditional updates for read-modify-write.
 */

/** Which engine a Database runs on. */
export type Dialect = "sqlite" | "postgres";

/** A service's database: a Kysely instance plus what differs between dialects. */
export interface Database {
  /** Services narrow it with their own table interface: `database.db as Kysely<MyTables>`. */
  readonly db: Kysely<any>;
  readonly dialect: Dialect;
  /** Closes the connection or pool; safe to call more than once. */
  close(): Promise<void>;
}

// 10 connections: a service's handlers run short queries, so 10 in flight saturate 2 cores, and
// PostgreSQL's default max_connections of 100 still leaves room for ~9 such processes per server.
const DEFAULT_POOL_SIZE = 10;
// 5 s: a PostgreSQL that cannot hand out a connection in 5 s is down for our purposes; pg's
// default (0) would make every call hang forever instead of failing with a clear error.
const PG_CONNECT_TIMEOUT_MS = 5_000;
// 5 s: other processes on the same file (a second replica, the sqlite3 CLI) hold the write lock for
// milliseconds per transaction; 5 s rides out a checkpoint or a migration. better-sqlite3 waits
// synchronously, so this is also the longest the event loop can freeze on a lock: keep it bounded.
const SQLITE_BUSY_TIMEOUT_MS = 5_000;

// better-sqlite3 is synchronous: a second connection to the same file in the same process would wait
// for a lock held by the first while blocking the very event loop the first needs to finish, then fail
// with SQLITE_BUSY. One Database per file per process is enforced.
const openSqliteFiles = new Set<string>();

/**
 * Opens a service's database. `url` is "sqlite:/abs/or/relative/file.db" (parent directories are
 * created), "sqlite::memory:", or "postgres://user@host:port/db" ("postgresql://" too; the
 * connection is checked before this resolves). Anything else fails with InvalidArgument.
 */
export async function openDatabase(url: string, opts: { poolSize?: number } = {}): Promise<Database> {
  if (url.startsWith("sqlite:")) return openSqlite(url.slice("sqlite:".length));
  if (url.startsWith("postgres://") || url.startsWith("postgresql://")) return openPostgres(url, opts.poolSize ?? DEFAULT_POOL_SIZE);
  const scheme = /^[a-z][a-z0-9+.-]*:/i.exec(url)?.[0] ?? "(none)";
  throw new ConnectError(
    `unsupported database URL scheme ${scheme}: expected sqlite:<file>, sqlite::memory: or postgres://user@host:port/db`,
    Code.InvalidArgument,
  );
}

function openSqlite(location: string): Database {
  if (!location) throw new ConnectError(`database URL "sqlite:" names no file: expected sqlite:<file> or sqlite::memory:`, Code.InvalidArgument);
  const memory = location === ":memory:";
  // Accept the URL-ish "sqlite:///abs/file.db" as well as "sqlite:/abs/file.db".
  const file = memory ? location : path.resolve(location.startsWith("//") ? location.slice(2) : location);
  if (!memory) {
    if (openSqliteFiles.has(file)) {
      throw new ConnectError(`sqlite file ${file} is already open in this process: share its Database`, Code.FailedPrecondition);
    }
    mkdirSync(path.dirname(file), { recursive: true });
  }
  const conn = new BetterSqlite3(file);
  try {
    // WAL: readers never block the writer nor the writer readers, across processes too.
    if (!memory) conn.pragma("journal_mode = WAL");
    conn.pragma(`busy_timeout = ${SQLITE_BUSY_TIMEOUT_MS}`);
    conn.pragma("foreign_keys = ON");
    // NORMAL in WAL mode skips the fsync per commit (the WAL is synced at checkpoints). A process
    // crash loses nothing and the file never corrupts; a power loss or OS crash can roll back the
    // last transactions committed before it. FULL would cost an fsync per commit.
    conn.pragma("synchronous = NORMAL");
  } catch (err) {
    conn.close();
    throw err;
  }
  if (!memory) openSqliteFiles.add(file);
  const db = new Kysely<any>({ dialect: new MeshSqliteDialect({ database: conn }), plugins: [new StripRowLocksPlugin()] });
  let closed: Promise<void> | undefined;
  return {
    db,
    dialect: "sqlite",
    close: () =>
      (closed ??= db.destroy().finally(() => {
        openSqliteFiles.delete(file);
      })),
  };
}

function parseInt8(text: string): number {
  const n = Number(text);
  if (!Number.isSafeInteger(n)) throw new RangeError(`int8 value ${text} is outside ±Number.MAX_SAFE_INTEGER and cannot be a JS number`);
  return n;
}

async function openPostgres(url: string, poolSize: number): Promise<Database> {
  // Loaded on first use: a service on embedded SQLite never pays pg's memory.
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const { Pool, types: pgTypes } = require("pg") as typeof Pg;
  const pool = new Pool({
    connectionString: url,
    max: poolSize,
    connectionTimeoutMillis: PG_CONNECT_TIMEOUT_MS,
    // Per pool, not pg's global registry, so other pg users in the process keep their defaults.
    types: {
      getTypeParser: ((oid: number, format?: "text" | "binary") =>
        oid === pgTypes.builtins.INT8 ? parseInt8 : pgTypes.getTypeParser(oid, format as "text")) as typeof pgTypes.getTypeParser,
    },
  });
  // An idle client's socket error (server restart) is emitted on the pool and would crash the
  // process if unhandled; the pool already discards that client and the next query reconnects.
  pool.on("error", () => undefined);
  const db = new Kysely<any>({ dialect: new PostgresDialect({ pool }) });
  try {
    await sql`select 1`.execute(db);
  } catch (err) {
    await db.destroy();
    throw new ConnectError(`cannot connect to PostgreSQL at ${redact(url)}: ${(err as Error).message}`, Code.Unavailable, undefined, undefined, err);
  }
  let closed: Promise<void> | undefined;
  return { db, dialect: "postgres", close: () => (closed ??= db.destroy()) };
}

function redact(url: string): string {
  try {
    const u = new URL(url);
    if (u.password) u.password = "***";
    return u.toString();
  } catch {
    return "(unparsable URL)";
  }
}

/**
 * Runs fn in a transaction: committed when fn resolves, rolled back when it throws. On SQLite it
 * starts with BEGIN IMMEDIATE, so writers from other processes queue instead of failing with
 * SQLITE_BUSY. Inside fn use `trx` only: `database.db` would wait for the connection fn holds
 * (SQLite has one) and deadlock.
 */
export function transaction<T>(database: Database, fn: (trx: Transaction<any>) => Promise<T>): Promise<T> {
  return database.db.transaction().execute(fn);
}

const UNIQUE_CODES = new Set([
  "23505", // PostgreSQL unique_violation (primary keys included)
  "SQLITE_CONSTRAINT_UNIQUE",
  "SQLITE_CONSTRAINT_PRIMARYKEY",
]);

/** True for a unique-constraint (or primary-key) violation in either dialect, also when wrapped as a cause. */
export function isUniqueViolation(err: unknown): boolean {
  for (let e = err, depth = 0; e && typeof e === "object" && depth < 5; e = (e as { cause?: unknown }).cause, depth++) {
    if (UNIQUE_CODES.has(String((e as { code?: unknown }).code))) return true;
  }
  return false;
}

/** The column type for raw bytes: `bytea` on PostgreSQL, `blob` on SQLite. */
export function blobType(dialect: Dialect): "bytea" | "blob" {
  return dialect === "postgres" ? "bytea" : "blob";
}
