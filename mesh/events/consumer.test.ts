import { create, toBinary } from "@bufbuild/protobuf";
import { anyPack, timestampNow } from "@bufbuild/protobuf/wkt";
import { propagation, trace } from "@opentelemetry/api";
import { W3CTraceContextPropagator } from "@opentelemetry/core";
import { headers, type NatsConnection } from "nats";
import { EventEnvelopeSchema } from "../../gen/meshwork/v1/event_pb.js";
import { OrderPlacedSchema } from "../../gen/orders/v1/events_pb.js";
import { transaction } from "../db/index.js";
import { DIALECTS } from "../db/testing.js";
import { startNats, startProcess, tsxArgs, waitFor, type NatsServer } from "../infra/index.js";
import { EventConsumer, on, type Delivery } from "./consumer.js";
import { listDlq, redriveDlq } from "./dlq.js";
import { OutboxRelay } from "./relay.js";
import { domainStream, ensureConsumer, ensureStreams, type StreamDef } from "./streams.js";
import { connectNats, countEffects, openTestDb, placeOrder, recordEffect, type TestDb } from "./test-support.js";

let nats: NatsServer;
let nc: NatsConnection;
let counter = 0;

beforeAll(async () => {
  nats = await startNats();
  nc = await connectNats(nats.url);
});

afterAll(async () => {
  await nc?.close();
  await nats?.stop();
});

/** A domain stream and a dead-letter stream of its own per test. */
async function freshStreams(): Promise<{ stream: string; subject: string; dlq: StreamDef; dlqPrefix: string }> {
  const n = ++counter;
  const def = domainStream(`cs${n}`);
  const dlqPrefix = `dlq${n}`;
  const dlq = { name: `DLQ${n}`, subjects: [`${dlqPrefix}.>`] };
  await ensureStreams(await nc.jetstreamManager(), [def, dlq]);
  return { stream: def.name, subject: `cs${n}.order_placed`, dlq, dlqPrefix };
}

function envelopeBytes(id: string, orderId: string): Uint8Array {
  return toBinary(
    EventEnvelopeSchema,
    create(EventEnvelopeSchema, {
      id,
      type: OrderPlacedSchema.typeName,
      time: timestampNow(),
      producer: "test",
      subject: orderId,
      payload: anyPack(OrderPlacedSchema, create(OrderPlacedSchema, { orderId })),
    }),
  );
}

async function consumerState(stream: string, durable: string): Promise<{ pending: number; ackPending: number }> {
  const info = await (await nc.jetstreamManager()).consumers.info(stream, durable);
  return { pending: info.num_pending, ackPending: info.num_ack_pending };
}

describe.each(DIALECTS)("consumer on %s", (dialect) => {
  let t: TestDb;
  const cleanups: (() => Promise<void>)[] = [];
  beforeEach(async () => {
    t = await openTestDb(dialect);
  });
  afterEach(async () => {
    for (const c of cleanups.splice(0).reverse()) await c();
    await t.dispose();
  });

  async function startConsumer(opts: Partial<ConstructorParameters<typeof EventConsumer>[0]> & { stream: string; filterSubjects: string[] }): Promise<EventConsumer> {
    const c = new EventConsumer({ nats: nc, database: t.database, durable: `d-${opts.stream}`, handlers: [recordEffect], ...opts });
    await c.start();
    cleanups.push(() => c.stop());
    return c;
  }

  test("the same envelope delivered twice under different Nats-Msg-Ids has one effect", async () => {
    const { stream, subject } = await freshStreams();
    await startConsumer({ stream, filterSubjects: [subject] });
    const js = nc.jetstream();
    const bytes = envelopeBytes("evt-dup-1", "o-dup");
    const a = await js.publish(subject, bytes, { msgID: "first" });
    const b = await js.publish(subject, bytes, { msgID: "second" });
    // JetStream stored both (different msg ids): only the inbox can suppress the second.
    expect([a.duplicate, b.duplicate]).toEqual([false, false]);
    await waitFor(async () => {
      const s = await consumerState(stream, `d-${stream}`);
      return s.pending === 0 && s.ackPending === 0;
    }, { what: "both deliveries acked" });
    expect(await countEffects(t.database)).toEqual({ rows: 1, orders: 1 });
    const inbox = await t.database.db.selectFrom("meshwork_inbox").selectAll().execute();
    expect(inbox.map((r) => [r.consumer, r.event_id])).toEqual([[`d-${stream}`, "evt-dup-1"]]);
  });

  test("a failing handler dead-letters after maxDeliver; redrive after the fix processes it once", async () => {
    const { stream, subject, dlq, dlqPrefix } = await freshStreams();
    let broken = true;
    const attempts: number[] = [];
    await startConsumer({
      stream,
      filterSubjects: [subject],
      maxDeliver: 3,
      nakBackoff: { initialMs: 20, maxMs: 100 },
      dlqSubjectPrefix: dlqPrefix,
      handlers: [
        on(OrderPlacedSchema, async (p, env, trx, d) => {
          attempts.push(d.deliveryCount);
          // The effect is written before the failure: the rollback must undo it.
          await recordEffect.handle(p, env, trx, d);
          if (broken) throw new Error(`payment gateway rejected order ${p.orderId}`);
        }),
      ],
    });
    const eventId = await transaction(t.database, (trx) => placeOrder(trx, "o-poison", subject));
    const relay = new OutboxRelay({ database: t.database, nats: () => nc, pollIntervalMs: 100 });
    cleanups.push(() => relay.stop());
    relay.start();

    const jsm = await nc.jetstreamManager();
    const [entry] = await waitFor(async () => {
      const l = await listDlq(jsm, { stream: dlq.name });
      return l.length > 0 && l;
    }, { what: "dead letter" });
    expect(attempts).toEqual([1, 2, 3]);
    expect(entry).toMatchObject({
      subject: `${dlqPrefix}.${subject}`,
      originalSubject: subject,
      originalStream: stream,
      consumer: `d-${stream}`,
      reason: "payment gateway rejected order o-poison",
      eventId,
      deliveries: 3,
    });
    expect(await countEffects(t.database)).toEqual({ rows: 0, orders: 0 });
    // Terminated: JetStream no longer tries to deliver the original.
    await waitFor(async () => (await consumerState(stream, `d-${stream}`)).ackPending === 0, { what: "original terminated" });

    broken = false;
    const redriven = await redriveDlq(nc, [entry.seq], { stream: dlq.name });
    expect(redriven).toEqual([{ seq: entry.seq, subject, eventId }]);
    await waitFor(async () => (await countEffects(t.database)).rows >= 1, { what: "effect after redrive" });
    expect(await countEffects(t.database)).toEqual({ rows: 1, orders: 1 });
    expect(await listDlq(jsm, { stream: dlq.name })).toEqual([]);
    // The redrive republished the envelope unchanged (same event id) within the dedup window.
    expect(attempts).toEqual([1, 2, 3, 1]);
  });

  test("an undecodable envelope goes to the DLQ on its first delivery", async () => {
    const { stream, subject, dlq, dlqPrefix } = await freshStreams();
    let calls = 0;
    await startConsumer({
      stream,
      filterSubjects: [subject],
      dlqSubjectPrefix: dlqPrefix,
      handlers: async () => {
        calls++;
      },
    });
    const js = nc.jetstream();
    // Field 1 as a length-delimited string of length 5 but only 2 bytes follow: truncated.
    await js.publish(subject, new Uint8Array([0x0a, 0x05, 0x61, 0x62]), { msgID: "garbage-1" });
    const [entry] = await waitFor(async () => {
      const l = await listDlq(await nc.jetstreamManager(), { stream: dlq.name });
      return l.length > 0 && l;
    }, { what: "poison message dead-lettered" });
    expect(entry.deliveries).toBe(1);
    expect(entry.eventId).toBe("garbage-1");
    expect(entry.reason).toMatch(/^undecodable envelope/);
    expect(calls).toBe(0);
  });
});

describe("consumer plumbing", () => {
  let t: TestDb;
  beforeAll(async () => {
    t = await openTestDb("sqlite");
  });
  afterAll(async () => {
    await t.dispose();
  });

  test("stream and consumer creation is idempotent", async () => {
    const jsm = await nc.jetstreamManager();
    const defs = [domainStream("idem"), { name: "DLQIDEM", subjects: ["dlqidem.>"] }];
    expect(await ensureStreams(jsm, defs)).toEqual({ IDEM: "created", DLQIDEM: "created" });
    await nc.jetstream().publish("idem.thing_happened", new Uint8Array([1]));
    expect(await ensureStreams(jsm, defs)).toEqual({ IDEM: "unchanged", DLQIDEM: "unchanged" });
    const info = await jsm.streams.info("IDEM");
    expect(info.state.messages).toBe(1);
    expect(info.config).toMatchObject({ storage: "file", duplicate_window: 120_000_000_000, subjects: ["idem.>"] });
    expect(await ensureStreams(jsm, [{ ...defs[0], maxAgeMs: 3_600_000 }])).toEqual({ IDEM: "updated" });
    expect((await jsm.streams.info("IDEM")).state.messages).toBe(1);

    const def = { stream: "IDEM", durable: "idem-consumer", filterSubjects: ["idem.>"], ackWaitMs: 30_000 };
    expect(await ensureConsumer(jsm, def)).toBe("created");
    expect(await ensureConsumer(jsm, def)).toBe("unchanged");
    expect(await ensureConsumer(jsm, { ...def, ackWaitMs: 10_000 })).toBe("updated");
    expect((await jsm.consumers.info("IDEM", "idem-consumer")).config).toMatchObject({ ack_wait: 10_000_000_000, max_deliver: -1, filter_subject: "idem.>" });
  });

  test("trace context and deadline travel from enqueue to the handler", async () => {
    propagation.setGlobalPropagator(new W3CTraceContextPropagator());
    try {
      const { stream, subject } = await freshStreams();
      const seen: Delivery[] = [];
      let wrapped = 0;
      const c = new EventConsumer({
        nats: nc,
        database: t.database,
        durable: "trace",
        stream,
        filterSubjects: [subject],
        handlers: [on(OrderPlacedSchema, async (_p, _env, _trx, d) => void seen.push(d))],
        onMessage: async (_msg, _ctx, next) => {
          wrapped++;
          await next();
        },
      });
      await c.start();
      const relay = new OutboxRelay({ database: t.database, nats: () => nc });
      const traceparent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";
      const deadline = Date.now() + 60_000;
      await transaction(t.database, (trx) => placeOrder(trx, "o-trace", subject, { traceparent, deadline }));
      relay.start();
      relay.kick();
      try {
        await waitFor(() => seen.length > 0, { what: "handler call" });
      } finally {
        await relay.stop();
        await c.stop();
      }
      expect(trace.getSpanContext(seen[0].traceContext)).toMatchObject({ traceId: "0af7651916cd43dd8448eb211c80319c", spanId: "b7ad6b7169203331", isRemote: true });
      expect(seen[0]).toMatchObject({ deadline, subject, deliveryCount: 1, stream });
      expect(wrapped).toBe(1);
    } finally {
      propagation.disable();
    }
  });

  test("dlq-cli lists and redrives", async () => {
    const { subject } = await freshStreams();
    const js = nc.jetstream();
    const dlqDefs = [{ name: "DLQ", subjects: ["dlq.>"] }];
    await ensureStreams(await nc.jetstreamManager(), dlqDefs);
    const h = headers();
    h.set("Meshwork-Dlq-Subject", subject);
    h.set("Meshwork-Dlq-Reason", "test reason");
    h.set("Meshwork-Dlq-Event-Id", "evt-cli");
    const ack = await js.publish(`dlq.${subject}`, envelopeBytes("evt-cli", "o-cli"), { headers: h });
    const cli = async (...args: string[]) => {
      const p = startProcess(process.execPath, tsxArgs(`${__dirname}/dlq-cli.ts`, ...args, "--nats", nats.url));
      const exit = await p.exited;
      return { code: exit.code, out: p.output() };
    };
    const listed = await cli("list");
    expect(listed.code).toBe(0);
    expect(JSON.parse(listed.out.trim())).toMatchObject({ seq: ack.seq, originalSubject: subject, reason: "test reason", eventId: "evt-cli" });
    const redriven = await cli("redrive", String(ack.seq));
    expect(redriven.code).toBe(0);
    expect(JSON.parse(redriven.out.trim())).toEqual({ seq: ack.seq, subject, eventId: "evt-cli" });
    expect(await listDlq(await nc.jetstreamManager())).toEqual([]);
    expect((await cli("redrive", "x")).code).toBe(2);
  });
});
