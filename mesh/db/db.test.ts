import { Code, ConnectError } from "@connectrpc/connect";
import { sql, type Kysely } from "kysely";
import { existsSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { startProcess, tsxArgs, waitFor } from "../infra/index.js";
import { blobType, isUniqueViolation, migrate, openDatabase, transaction, type Database, type Migration } from "./index.js";
import { createScratchDatabase, DIALECTS, type ScratchDatabase } from "./testing.js";

async function codeOf(p: Promise<unknown>): Promise<Code | undefined> {
  try {
    await p;
    return undefined;
  } catch (err) {
    return ConnectError.from(err).code;
  }
}

function deferred(): { promise: Promise<void>; resolve: () => void } {
  let resolve!: () => void;
  const promise = new Promise<void>((r) => (resolve = r));
  return { promise, resolve };
}

const appliedCount = async (db: Kysely<any>, table: string): Promise<number> =>
  (await db.selectFrom(table).select((eb) => eb.fn.countAll().as("n")).executeTakeFirstOrThrow()).n as number;

describe("openDatabase URLs", () => {
  const dirs: string[] = [];
  const tempFile = () => {
    const dir = mkdtempSync(path.join(tmpdir(), "meshwork-url-"));
    dirs.push(dir);
    return path.join(dir, "nested", "svc.db");
  };
  afterAll(() => dirs.forEach((d) => rmSync(d, { recursive: true, force: true })));

  it.each([
    ["absolute", (f: string) => `sqlite:${f}`],
    ["triple-slash", (f: string) => `sqlite://${f}`],
    ["relative", (f: string) => `sqlite:${path.relative(process.cwd(), f)}`],
  ])("opens sqlite:%s paths, creating the parent directory", async (_name, toUrl) => {
    const file = tempFile();
    const database = await openDatabase(toUrl(file));
    try {
      expect(database.dialect).toBe("sqlite");
      expect(existsSync(file)).toBe(true);
      expect((await sql<{ journal_mode: string }>`pragma journal_mode`.execute(database.db)).rows[0].journal_mode).toBe("wal");
      expect((await sql<{ foreign_keys: number }>`pragma foreign_keys`.execute(database.db)).rows[0].foreign_keys).toBe(1);
      expect((await sql<{ synchronous: number }>`pragma synchronous`.execute(database.db)).rows[0].synchronous).toBe(1); // NORMAL
      expect((await sql<{ timeout: number }>`pragma busy_timeout`.execute(database.db)).rows[0].timeout).toBe(5000);
    } finally {
      await database.close();
    }
  });

  it("opens sqlite::memory:", async () => {
    const database = await openDatabase("sqlite::memory:");
    expect(database.dialect).toBe("sqlite");
    expect((await sql<{ one: number }>`select 1 as one`.execute(database.db)).rows[0].one).toBe(1);
    await database.close();
    await database.close(); // idempotent
  });

  it("refuses a second Database on the same sqlite file in one process", async () => {
    const url = `sqlite:${tempFile()}`;
    const first = await openDatabase(url);
    expect(await codeOf(openDatabase(url))).toBe(Code.FailedPrecondition);
    await first.close();
    const again = await openDatabase(url); // released on close
    await again.close();
  });

  it("opens postgres:// and postgresql:// URLs and fails fast on an unreachable server", async () => {
    const scratch = await createScratchDatabase("postgres");
    try {
      for (const url of [scratch.url, scratch.url.replace(/^postgres:/, "postgresql:")]) {
        const database = await openDatabase(url, { poolSize: 2 });
        expect(database.dialect).toBe("postgres");
        expect((await sql<{ one: number }>`select 1 as one`.execute(database.db)).rows[0].one).toBe(1);
        await database.close();
        await database.close();
      }
    } finally {
      await scratch.drop();
    }
    // Port 1 on loopback refuses at once.
    expect(await codeOf(openDatabase("postgres://postgres:secret@127.0.0.1:1/nope"))).toBe(Code.Unavailable);
  });

  it.each(["mysql://root@localhost/db", "", "sqlite:", "file.db", "http://x"])("rejects %j with InvalidArgument", async (url) => {
    expect(await codeOf(openDatabase(url))).toBe(Code.InvalidArgument);
  });
});

describe.each(DIALECTS)("%s database", (dialect) => {
  let scratch: ScratchDatabase;
  let database: Database;
  beforeEach(async () => {
    scratch = await createScratchDatabase(dialect);
    database = await openDatabase(scratch.url);
  });
  afterEach(async () => {
    await database.close();
    await scratch.drop();
  });

  it("returns int8/count as JS numbers and bytes as Buffers", async () => {
    const now = Date.now();
    await database.db.schema.createTable("t").addColumn("at", "bigint").addColumn("data", blobType(dialect)).execute();
    await database.db.insertInto("t").values({ at: now, data: Buffer.from([0, 1, 255]) }).execute();
    const row = await database.db.selectFrom("t").selectAll().executeTakeFirstOrThrow();
    expect(row.at).toBe(now);
    expect([...row.data]).toEqual([0, 1, 255]);
    expect(await appliedCount(database.db, "t")).toBe(1);
    if (dialect === "postgres") {
      // Beyond 2^53 fails loudly instead of silently losing precision.
      await expect(sql`select 9007199254740993::int8 as big`.execute(database.db)).rejects.toThrow(RangeError);
    }
  });

  it("migrate applies each migration once and keeps separate histories per table", async () => {
    let ran = 0;
    const m = (id: string, table: string): Migration => ({
      id,
      async up(db, d) {
        ran++;
        expect(d).toBe(dialect);
        await db.schema.createTable(table).addColumn("id", "integer", (c) => c.primaryKey()).execute();
      },
    });
    await migrate(database, [m("0001_a", "a")]);
    await migrate(database, [m("0001_a", "a"), m("0002_b", "b")]);
    await migrate(database, [m("0001_a", "a"), m("0002_b", "b")]);
    expect(ran).toBe(2);
    // Another module's history: same id, separate table, applied on its own.
    await migrate(database, [m("0001_a", "mod_a")], { table: "mod_migrations" });
    expect(ran).toBe(3);
    expect(await appliedCount(database.db, "schema_migrations")).toBe(2);
    expect(await appliedCount(database.db, "mod_migrations")).toBe(1);
  });

  it("rolls back a failing migration batch and applies it on the next run", async () => {
    let fail = true;
    const migrations: Migration[] = [
      { id: "0001_t", up: async (db) => void (await db.schema.createTable("t").addColumn("id", "integer").execute()) },
      {
        id: "0002_boom",
        async up() {
          if (fail) throw new Error("boom");
        },
      },
    ];
    expect(await codeOf(migrate(database, migrations))).toBe(Code.Internal);
    const tables = (await database.db.introspection.getTables()).map((t) => t.name);
    expect(tables).not.toContain("t"); // 0001 rolled back with the batch
    fail = false;
    await migrate(database, migrations);
    expect(await appliedCount(database.db, "schema_migrations")).toBe(2);
  });

  it("two concurrent migrate() calls apply a migration once", async () => {
    let ran = 0;
    const migrations: Migration[] = [
      {
        id: "0001_slow",
        async up(db, d) {
          ran++;
          // Holds the lock a while so the second caller really waits on it.
          if (d === "postgres") await sql`select pg_sleep(0.3)`.execute(db);
          await db.schema.createTable("once").addColumn("id", "integer").execute(); // would throw if applied twice
        },
      },
    ];
    // PostgreSQL: two pools, as two processes would have. SQLite allows one Database per file per
    // process (cross-process is proven with child processes below).
    const second = dialect === "postgres" ? await openDatabase(scratch.url) : database;
    try {
      await Promise.all([migrate(database, migrations), migrate(second, migrations)]);
    } finally {
      if (second !== database) await second.close();
    }
    expect(ran).toBe(1);
    expect(await appliedCount(database.db, "schema_migrations")).toBe(1);
  });

  it("transaction commits on success and rolls back on throw", async () => {
    await database.db.schema.createTable("t").addColumn("v", "text").execute();
    expect(await transaction(database, async (trx) => (await trx.insertInto("t").values({ v: "kept" }).execute(), 42))).toBe(42);
    await expect(
      transaction(database, async (trx) => {
        await trx.insertInto("t").values({ v: "lost" }).execute();
        throw new Error("abort");
      }),
    ).rejects.toThrow("abort");
    expect((await database.db.selectFrom("t").select("v").execute()).map((r) => r.v)).toEqual(["kept"]);
  });

  it("concurrent transactions do not see or break each other", async () => {
    await database.db.schema.createTable("t").addColumn("v", "text").execute();
    const t1Started = deferred();
    const t1Gate = deferred();
    const t1 = transaction(database, async (trx) => {
      await trx.insertInto("t").values({ v: "t1" }).execute();
      t1Started.resolve();
      await t1Gate.promise; // T1 stays open across awaits
      throw new Error("t1 rolls back");
    });
    await t1Started.promise;
    let t2Done = false;
    const t2 = transaction(database, async (trx) => {
      await trx.insertInto("t").values({ v: "t2" }).execute();
      return (await trx.selectFrom("t").select("v").execute()).map((r) => r.v);
    }).finally(() => (t2Done = true));
    if (dialect === "postgres") {
      // Another pooled connection: T2 commits while T1 is open and never sees T1's row.
      expect(await t2).toEqual(["t2"]);
    } else {
      // One connection behind Kysely's mutex: T2 waits for T1 instead of joining its transaction.
      for (let i = 0; i < 20; i++) await new Promise((r) => setImmediate(r));
      expect(t2Done).toBe(false);
    }
    t1Gate.resolve();
    await expect(t1).rejects.toThrow("t1 rolls back");
    expect(await t2).toEqual(["t2"]);
    expect((await database.db.selectFrom("t").select("v").execute()).map((r) => r.v)).toEqual(["t2"]);
  });

  it("isUniqueViolation recognises unique and primary-key violations only", async () => {
    await database.db.schema
      .createTable("u")
      .addColumn("id", "text", (c) => c.primaryKey())
      .addColumn("email", "text", (c) => c.unique())
      .addColumn("name", "text", (c) => c.notNull())
      .execute();
    await database.db.insertInto("u").values({ id: "1", email: "a@x", name: "a" }).execute();
    const errorOf = (values: Record<string, string | null>) =>
      database.db
        .insertInto("u")
        .values(values)
        .execute()
        .then(() => undefined, (e: unknown) => e);
    const pk = await errorOf({ id: "1", email: "b@x", name: "b" });
    const unique = await errorOf({ id: "2", email: "a@x", name: "b" });
    const notNull = await errorOf({ id: "3", email: "c@x", name: null });
    // Errors from the native driver come from another realm under jest: check the shape, not instanceof.
    expect([pk, unique, notNull].every((e) => typeof e === "object" && e !== null && "message" in e)).toBe(true);
    expect(isUniqueViolation(pk)).toBe(true);
    expect(isUniqueViolation(unique)).toBe(true);
    expect(isUniqueViolation(new ConnectError("wrapped", Code.Internal, undefined, undefined, unique))).toBe(true);
    expect(isUniqueViolation(notNull)).toBe(false);
    expect(isUniqueViolation(new Error("x"))).toBe(false);
    expect(isUniqueViolation(undefined)).toBe(false);
  });

  it("select ... for update runs on both dialects", async () => {
    await database.db.schema.createTable("stock").addColumn("sku", "text").addColumn("n", "integer").execute();
    await database.db.insertInto("stock").values({ sku: "a", n: 3 }).execute();
    await transaction(database, async (trx) => {
      const { n } = await trx.selectFrom("stock").select("n").where("sku", "=", "a").forUpdate().executeTakeFirstOrThrow();
      await trx.updateTable("stock").set({ n: n - 1 }).where("sku", "=", "a").execute();
    });
    expect((await database.db.selectFrom("stock").select("n").executeTakeFirstOrThrow()).n).toBe(2);
  });
});

describe("sqlite across processes", () => {
  it("two processes migrate once and increment one counter without lost updates or SQLITE_BUSY", async () => {
    const scratch = await createScratchDatabase("sqlite");
    const goFile = path.join(path.dirname(scratch.url.slice("sqlite:".length)), "..", "go");
    const rounds = 150;
    const fixture = path.join(__dirname, "sqlite-writer.fixture.ts");
    const children = [0, 1].map(() => startProcess(process.execPath, tsxArgs(fixture, scratch.url, goFile, String(rounds))));
    try {
      await waitFor(
        () => {
          const dead = children.find((c) => c.proc.exitCode !== null && !c.output().includes("ready"));
          if (dead) throw new Error(`a writer exited before it was ready:\n${dead.output()}`);
          return children.every((c) => c.output().includes("ready"));
        },
        { timeoutMs: 30_000, what: "children ready" },
      );
      writeFileSync(goFile, "");
      const exits = await Promise.all(children.map((c) => c.exited));
      expect({ exits, out: exits.some((e) => e.code !== 0) ? children.map((c) => c.output()) : [] }).toEqual({
        exits: [
          { code: 0, signal: null },
          { code: 0, signal: null },
        ],
        out: [],
      });
      const database = await openDatabase(scratch.url);
      try {
        expect((await database.db.selectFrom("counter").select("n").executeTakeFirstOrThrow()).n).toBe(2 * rounds);
        expect(await appliedCount(database.db, "schema_migrations")).toBe(1);
      } finally {
        await database.close();
      }
    } finally {
      await Promise.all(children.map((c) => c.kill()));
      await scratch.drop();
    }
  });
});
