import { fromBinary } from "@bufbuild/protobuf";
import type { NatsConnection } from "nats";
import { EventEnvelopeSchema } from "../../gen/meshwork/v1/event_pb.js";
import { DIALECTS } from "../db/testing.js";
import { openDatabase, transaction } from "../db/index.js";
import { startNats, waitFor, type NatsServer } from "../infra/index.js";
import { OutboxRelay } from "./relay.js";
import { DLQ_STREAM, domainStream, ensureStreams } from "./streams.js";
import { connectNats, openTestDb, placeOrder, type TestDb } from "./test-support.js";

// R6 (broker outage) and R6b (relay killed between publish and mark-sent) run in the fault
// battery: tests/faults/scenarios/r6-broker-outage.ts and r6b-relay-crash.ts.

let nats: NatsServer;
let nc: NatsConnection;
let domainCounter = 0;

beforeAll(async () => {
  nats = await startNats();
  nc = await connectNats(nats.url);
});

afterAll(async () => {
  await nc?.close();
  await nats?.stop();
});

/** A stream of its own per test, so tests never see each other's messages. */
async function freshDomain(): Promise<{ domain: string; stream: string; subject: string }> {
  const domain = `ob${++domainCounter}`;
  const def = domainStream(domain);
  await ensureStreams(await nc.jetstreamManager(), [def, DLQ_STREAM]);
  return { domain, stream: def.name, subject: `${domain}.order_placed` };
}

async function streamCount(stream: string): Promise<number> {
  return (await (await nc.jetstreamManager()).streams.info(stream)).state.messages;
}

describe.each(DIALECTS)("outbox on %s", (dialect) => {
  let t: TestDb;
  const cleanups: (() => Promise<void>)[] = [];
  beforeEach(async () => {
    t = await openTestDb(dialect);
  });
  afterEach(async () => {
    for (const c of cleanups.splice(0).reverse()) await c();
    await t.dispose();
  });

  function relay(extra: Partial<ConstructorParameters<typeof OutboxRelay>[0]> = {}): OutboxRelay {
    // Short backoff and poll: tests wait for outcomes, they should not wait for timers.
    const r = new OutboxRelay({ database: t.database, nats: () => nc, pollIntervalMs: 100, backoff: { initialMs: 50, maxMs: 500 }, ...extra });
    cleanups.push(() => r.stop());
    return r;
  }

  test("an event enqueued in a rolled-back transaction is never published", async () => {
    const { stream, subject } = await freshDomain();
    await expect(
      transaction(t.database, async (trx) => {
        await placeOrder(trx, "rolled-back", subject);
        throw new Error("business rule failed after the enqueue");
      }),
    ).rejects.toThrow("business rule failed");
    const committedId = await transaction(t.database, (trx) => placeOrder(trx, "committed", subject));
    const r = relay();
    r.start();
    // The committed event went out after the rolled-back one would have: once it is there, the
    // relay has had its chance to publish the other.
    await waitFor(async () => (await r.backlog()) === 0 && (await streamCount(stream)) >= 1, { what: "committed event published" });
    expect(await streamCount(stream)).toBe(1);
    const jsm = await nc.jetstreamManager();
    const stored = await jsm.streams.getMessage(stream, { seq: 1 });
    expect(stored.header.get("Nats-Msg-Id")).toBe(committedId);
    expect(await t.database.db.selectFrom("orders").select("id").execute()).toEqual([{ id: "committed" }]);
  });

  test("sent rows are purged after retainSentMs; unsent rows never", async () => {
    const { stream, subject } = await freshDomain();
    const rows = () => t.database.db.selectFrom("meshwork_outbox").select("id").execute();
    await transaction(t.database, (trx) => placeOrder(trx, "p-1", subject));
    const r = relay({ retainSentMs: 0 });
    r.start();
    await waitFor(async () => (await r.backlog()) === 0 && (await streamCount(stream)) === 1, { what: "published" });
    await r.stop();
    // The loop may have purged it already (it purges when idle); either way it goes.
    await waitFor(async () => (await r.purgeSent()) >= 0 && (await rows()).length === 0, { what: "sent row purged" });
    const unsent = await transaction(t.database, (trx) => placeOrder(trx, "p-2", subject));
    expect(await r.purgeSent()).toBe(0);
    expect(await rows()).toEqual([{ id: unsent }]);
  });
});

describe("several relays on one PostgreSQL database", () => {
  test("publish every event once, in insertion order", async () => {
    const t = await openTestDb("postgres");
    // A second replica's pool on the same database.
    const other = await openDatabase(t.url);
    try {
      const { stream, subject } = await freshDomain();
      const n = 200;
      for (let i = 0; i < n; i++) await transaction(t.database, (trx) => placeOrder(trx, `m-${i}`, subject));
      // Small batches so the two relays contend for many of them.
      const relays = [t.database, other, t.database].map((database) => new OutboxRelay({ database, nats: () => nc, batchSize: 10, pollIntervalMs: 20 }));
      relays.forEach((r) => r.start());
      try {
        await waitFor(async () => (await relays[0].backlog()) === 0, { what: "backlog drained by three relays" });
      } finally {
        await Promise.all(relays.map((r) => r.stop()));
      }
      const stats = relays.map((r) => r.stats);
      expect(stats.reduce((a, s) => a + s.published, 0)).toBe(n);
      expect(stats.reduce((a, s) => a + s.duplicates + s.failures + s.offline, 0)).toBe(0);
      expect(await streamCount(stream)).toBe(n);
      const jsm = await nc.jetstreamManager();
      const order: string[] = [];
      for (let seq = 1; seq <= n; seq++) order.push(fromBinary(EventEnvelopeSchema, (await jsm.streams.getMessage(stream, { seq })).data).subject);
      expect(order).toEqual(Array.from({ length: n }, (_, i) => `m-${i}`));
    } finally {
      await other.close();
      await t.dispose();
    }
  });
});
