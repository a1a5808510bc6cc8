import { create } from "@bufbuild/protobuf";
import { StringValueSchema } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError } from "@connectrpc/connect";
import type { Kysely } from "kysely";
import { waitFor } from "../infra/index.js";
import { migrate, openDatabase, type Database } from "../db/index.js";
import { createScratchDatabase, DIALECTS, type ScratchDatabase } from "../db/testing.js";
import { hashRequest, IDEMPOTENCY_MIGRATION_TABLE, IdempotencyStore, idempotencyMigrations } from "./index.js";

const bytes = (s: string) => new TextEncoder().encode(s);
const text = (b: Uint8Array) => new TextDecoder().decode(b);

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

/** An fn that counts its calls and answers `answer` once `gate` (if any) opens. */
function counted(answer: string | (() => never), gate?: Promise<void>) {
  const fn = async () => {
    fn.calls++;
    if (gate) await gate;
    return typeof answer === "string" ? bytes(answer) : answer();
  };
  fn.calls = 0;
  return fn;
}

describe.each(DIALECTS)("IdempotencyStore on %s", (dialect) => {
  let scratch: ScratchDatabase;
  let database: Database;
  let store: IdempotencyStore;
  const rows = () => (database.db as Kysely<any>).selectFrom("meshwork_idempotency").selectAll();

  beforeEach(async () => {
    scratch = await createScratchDatabase(dialect);
    database = await openDatabase(scratch.url);
    await migrate(database, idempotencyMigrations, { table: IDEMPOTENCY_MIGRATION_TABLE });
    store = new IdempotencyStore(database);
  });
  afterEach(async () => {
    await database.close();
    await scratch.drop();
  });

  it("executes the first call and replays it for a repeat", async () => {
    const fn = counted("order-1");
    expect(text(await store.run("orders/Place", "k1", "h", fn))).toBe("order-1");
    expect(text(await store.run("orders/Place", "k1", "h", fn))).toBe("order-1");
    expect(fn.calls).toBe(1);
    // Same key, other scope: independent.
    expect(text(await store.run("orders/Cancel", "k1", "h", fn))).toBe("order-1");
    expect(fn.calls).toBe(2);
  });

  it("replays an empty response (a default protobuf message) as zero bytes", async () => {
    const fn = async () => new Uint8Array(0);
    await store.run("s", "k", "h", fn);
    const replay = await store.run("s", "k", "h", async () => bytes("not called"));
    expect(replay).toBeInstanceOf(Uint8Array);
    expect(replay.byteLength).toBe(0);
  });

  it("20 concurrent runs with one key execute once and all get the same bytes", async () => {
    const gate = deferred();
    const fn = counted("only-once", gate.promise);
    // Half through a second store (on PostgreSQL a second pool too): those wait by polling the
    // database, as another replica would; the rest wait on the in-process promise.
    const otherDb = dialect === "postgres" ? await openDatabase(scratch.url) : database;
    const other = new IdempotencyStore(otherDb);
    try {
      const calls = Array.from({ length: 20 }, (_, i) => (i % 2 ? other : store).run("s", "k", "h", fn));
      await waitFor(() => fn.calls === 1, { what: "first executor started" });
      gate.resolve();
      const results = await Promise.all(calls);
      expect(results.map(text)).toEqual(Array(20).fill("only-once"));
      expect(fn.calls).toBe(1);
    } finally {
      if (otherDb !== database) await otherDb.close();
    }
  });

  it("rejects a key reused with a different request, pending or done", async () => {
    const gate = deferred();
    const first = store.run("s", "k", "hash-a", counted("a", gate.promise));
    await waitFor(async () => (await rows().execute()).length === 1, { what: "pending row" });
    const fn = counted("b");
    expect(await codeOf(store.run("s", "k", "hash-b", fn))).toBe(Code.FailedPrecondition);
    gate.resolve();
    await first;
    expect(await codeOf(store.run("s", "k", "hash-b", fn))).toBe(Code.FailedPrecondition);
    expect(fn.calls).toBe(0);
  });

  it("stores a final error and replays it", async () => {
    const fn = counted(() => {
      throw new ConnectError("sku 42 not found", Code.NotFound);
    });
    expect(await codeOf(store.run("s", "k", "h", fn))).toBe(Code.NotFound);
    const replay = await store.run("s", "k", "h", fn).catch((e: unknown) => ConnectError.from(e));
    expect(replay).toBeInstanceOf(ConnectError);
    expect((replay as ConnectError).code).toBe(Code.NotFound);
    expect((replay as ConnectError).rawMessage).toBe("sku 42 not found");
    expect(fn.calls).toBe(1);
  });

  it.each([
    ["Unavailable", () => new ConnectError("down", Code.Unavailable)],
    ["DeadlineExceeded", () => new ConnectError("slow", Code.DeadlineExceeded)],
    ["a plain Error (Unknown)", () => new Error("db connection lost")],
  ])("does not store a retryable failure: %s releases the key", async (_name, makeError) => {
    let calls = 0;
    const fn = async () => {
      if (++calls === 1) throw makeError();
      return bytes("second try");
    };
    expect(await codeOf(store.run("s", "k", "h", fn))).toBe(ConnectError.from(makeError()).code);
    expect(await rows().execute()).toEqual([]);
    expect(text(await store.run("s", "k", "h", fn))).toBe("second try");
    expect(calls).toBe(2);
  });

  it("takes over a key whose executor died (stale heartbeat)", async () => {
    const longAgo = Date.now() - 60_000;
    await (database.db as Kysely<any>)
      .insertInto("meshwork_idempotency")
      .values({ scope: "s", key: "k", request_hash: "h", state: "pending", owner: "dead", created_at: longAgo, heartbeat_at: longAgo })
      .execute();
    const fn = counted("recovered");
    expect(text(await store.run("s", "k", "h", fn))).toBe("recovered");
    expect(text(await store.run("s", "k", "h", fn))).toBe("recovered");
    expect(fn.calls).toBe(1);
  });

  it("fences a stalled executor's late result after a takeover", async () => {
    // Long timeout: no heartbeat fires during the test; the stall is simulated by backdating it.
    const a = new IdempotencyStore(database, { pendingTimeoutMs: 60_000 });
    const b = new IdempotencyStore(database, { pendingTimeoutMs: 60_000 });
    const gate = deferred();
    const fnA = counted("from-a", gate.promise);
    const first = a.run("s", "k", "h", fnA);
    await waitFor(() => fnA.calls === 1, { what: "A executing" });
    await (database.db as Kysely<any>).updateTable("meshwork_idempotency").set({ heartbeat_at: Date.now() - 120_000 }).execute();
    expect(text(await b.run("s", "k", "h", counted("from-b")))).toBe("from-b");
    gate.resolve();
    expect(text(await first)).toBe("from-a"); // A's caller still gets A's answer...
    expect(text(await store.run("s", "k", "h", counted("never")))).toBe("from-b"); // ...but B's is the stored one
  });

  it("does not take over a live executor that outlasts pendingTimeoutMs (heartbeat)", async () => {
    const pendingTimeoutMs = 300;
    const a = new IdempotencyStore(database, { pendingTimeoutMs });
    const b = new IdempotencyStore(database, { pendingTimeoutMs });
    const gate = deferred();
    const fnA = counted("slow-but-alive", gate.promise);
    const fnB = counted("duplicate");
    const first = a.run("s", "k", "h", fnA);
    await waitFor(() => fnA.calls === 1, { what: "A executing" });
    const repeat = b.run("s", "k", "h", fnB);
    // Wait until A has run for more than 2 × pendingTimeoutMs, proven by its refreshed heartbeat.
    await waitFor(async () => {
      const r = await rows().executeTakeFirstOrThrow();
      return r.heartbeat_at - r.created_at > 2 * pendingTimeoutMs;
    }, { what: "heartbeats past 2 × pendingTimeoutMs" });
    expect(fnB.calls).toBe(0);
    gate.resolve();
    expect([text(await first), text(await repeat)]).toEqual(["slow-but-alive", "slow-but-alive"]);
    expect(fnB.calls).toBe(0);
  });

  it("stops a waiting repeat when its signal aborts", async () => {
    const gate = deferred();
    const first = store.run("s", "k", "h", counted("a", gate.promise));
    await waitFor(async () => (await rows().execute()).length === 1, { what: "pending row" });
    const ac = new AbortController();
    const waiting = store.run("s", "k", "h", counted("b"), { signal: ac.signal });
    ac.abort(new ConnectError("deadline", Code.DeadlineExceeded));
    expect(await codeOf(waiting)).toBe(Code.DeadlineExceeded);
    gate.resolve();
    expect(text(await first)).toBe("a");
  });

  it("prunes records older than retention", async () => {
    const retentionMs = 60_000;
    const s = new IdempotencyStore(database, { retentionMs });
    await s.run("s", "k1", "h", counted("1"));
    await s.run("s", "k2", "h", counted("2"));
    expect(await s.prune()).toBe(0);
    expect(await s.prune(new Date(Date.now() + retentionMs + 1_000))).toBe(2);
    expect(await rows().execute()).toEqual([]);
  });

  it("runMessage hashes the request message and decodes the replayed response", async () => {
    let calls = 0;
    const fn = async () => (calls++, create(StringValueSchema, { value: "confirmed" }));
    const req = create(StringValueSchema, { value: "order 7" });
    const r1 = await store.runMessage("s", "k", req, StringValueSchema, StringValueSchema, fn);
    const r2 = await store.runMessage("s", "k", req, StringValueSchema, StringValueSchema, fn);
    expect([r1.value, r2.value, calls]).toEqual(["confirmed", "confirmed", 1]);
    const other = create(StringValueSchema, { value: "order 8" });
    expect(await codeOf(store.runMessage("s", "k", other, StringValueSchema, StringValueSchema, fn))).toBe(Code.FailedPrecondition);
    expect((await rows().executeTakeFirstOrThrow()).request_hash).toBe(hashRequest(new Uint8Array([10, 7, ...bytes("order 7")])));
  });
});
