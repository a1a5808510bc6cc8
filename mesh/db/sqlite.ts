import {
  CompiledQuery,
  SelectQueryNode,
  SqliteAdapter,
  SqliteDialect,
  SqliteDriver,
  type DatabaseConnection,
  type Driver,
  type DialectAdapter,
  type KyselyPlugin,
  type PluginTransformQueryArgs,
  type PluginTransformResultArgs,
  type QueryResult,
  type RootOperationNode,
  type SqliteDialectConfig,
  type UnknownRow,
} from "kysely";

/**
 * Kysely's SqliteDriver keeps ONE better-sqlite3 connection per Database and hands it out behind a
 * mutex for a whole transaction (verified in kysely 0.28.19 `sqlite-driver.js`: acquireConnection
 * locks, releaseConnection unlocks), so async transactions in one process never interleave.
 * What it does not do is start transactions with BEGIN IMMEDIATE: a deferred BEGIN takes the write
 * lock only at the first write, and when another process (a second replica on the same file, a
 * migration) committed in between, the upgrade fails at once with SQLITE_BUSY — busy_timeout does
 * not help there. IMMEDIATE takes the write lock up front, so writers queue on busy_timeout instead.
 */
class ImmediateSqliteDriver extends SqliteDriver {
  override async beginTransaction(connection: DatabaseConnection): Promise<void> {
    await connection.executeQuery(CompiledQuery.raw("begin immediate"));
  }
}

/**
 * SQLite runs DDL inside transactions just fine; Kysely's adapter says otherwise and also takes no
 * migration lock. Claiming transactional DDL makes Kysely's Migrator run every migration batch in
 * one (BEGIN IMMEDIATE) transaction, which is both atomic and the cross-process migration lock.
 * The one thing that cannot change inside a transaction is `PRAGMA foreign_keys` — migrations must
 * not rely on toggling it.
 */
class TransactionalDdlSqliteAdapter extends SqliteAdapter {
  override get supportsTransactionalDdl(): boolean {
    return true;
  }
}

/** Kysely's SQLite dialect with BEGIN IMMEDIATE transactions and a locked, transactional Migrator. */
export class MeshSqliteDialect extends SqliteDialect {
  readonly #config: SqliteDialectConfig;
  constructor(config: SqliteDialectConfig) {
    super(config);
    this.#config = config;
  }
  override createDriver(): Driver {
    return new ImmediateSqliteDriver(this.#config);
  }
  override createAdapter(): DialectAdapter {
    return new TransactionalDdlSqliteAdapter();
  }
}

const ROW_LOCKS = new Set(["ForUpdate", "ForNoKeyUpdate", "ForShare", "ForKeyShare", "NoWait", "SkipLocked"]);

/**
 * Drops `for update` / `for share` (and `nowait` / `skip locked`) from top-level selects on SQLite,
 * which has no row locks and rejects the syntax. Dropping them keeps their meaning: a SQLite
 * transaction holds the database write lock from BEGIN IMMEDIATE on, so every row it reads is
 * already protected. Services write `.forUpdate()` once and it works on both dialects.
 */
export class StripRowLocksPlugin implements KyselyPlugin {
  transformQuery({ node }: PluginTransformQueryArgs): RootOperationNode {
    if (!SelectQueryNode.is(node) || !node.endModifiers?.some((m) => m.modifier && ROW_LOCKS.has(m.modifier))) return node;
    const endModifiers = node.endModifiers.filter((m) => !(m.modifier && ROW_LOCKS.has(m.modifier)));
    return { ...node, endModifiers: endModifiers.length ? endModifiers : undefined };
  }
  async transformResult({ result }: PluginTransformResultArgs): Promise<QueryResult<UnknownRow>> {
    return result;
  }
}
