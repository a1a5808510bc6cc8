/**
 * The events series of issue #8 with exact counts, against a real nats-server: the relay exports
 * its backlog (`meshwork_outbox_backlog`), consumers count redeliveries
 * (`meshwork_consumer_redeliveries_total`) and report the dead-letter stream's size
 * (`meshwork_dlq_messages`) once they run.
 */
import type { NatsConnection } from "nats";
import { OrderPlacedSchema } from "../../gen/orders/v1/events_pb.js";
import { transaction } from "../db/index.js";
import { startNats, waitFor, type NatsServer } from "../infra/index.js";
import { startTelemetry, type Telemetry } from "../telemetry/index.js";
import { EventConsumer, on } from "./consumer.js";
import { OutboxRelay } from "./relay.js";
import { DLQ_STREAM, domainStream, ensureStreams } from "./streams.js";
import { connectNats, countEffects, openTestDb, placeOrder, recordEffect, type TestDb } from "./test-support.js";

let telemetry: Telemetry;
let nats: NatsServer;
let nc: NatsConnection;
let db: TestDb;

beforeAll(async () => {
  telemetry = startTelemetry({ serviceName: "events-metrics-test", instanceId: "em-1", env: {} });
  nats = await startNats();
  nc = await connectNats(nats.url);
  db = await openTestDb("sqlite");
});

afterAll(async () => {
  await nc?.close();
  await nats?.stop();
  await db?.dispose();
  await telemetry?.shutdown();
});

/** The value of series `name` with exactly `labels`; undefined when it is not exported. */
async function metric(name: string, labels: Record<string, string> = {}): Promise<number | undefined> {
  const want = Object.entries(labels)
    .map(([k, v]) => `${k}="${v}"`)
    .join(",");
  const line = (await telemetry.prometheusText()).split("\n").find((l) => l.startsWith(want ? `${name}{${want}} ` : `${name} `));
  return line === undefined ? undefined : Number(line.split(" ").pop());
}

test("backlog, redeliveries and DLQ size count exactly what happened", async () => {
  const def = domainStream("em");
  const subject = "em.order_placed";
  await ensureStreams(await nc.jetstreamManager(), [def, DLQ_STREAM]);

  // Three events committed while the relay has no broker: a backlog of 3.
  let connected: NatsConnection | undefined;
  const relay = new OutboxRelay({ database: db.database, nats: () => connected, pollIntervalMs: 50, backoff: { initialMs: 20, maxMs: 50 } });
  for (const id of ["o-ok", "o-flaky", "o-poison"]) await transaction(db.database, (trx) => placeOrder(trx, id, subject));
  expect(await metric("meshwork_outbox_backlog")).toBeUndefined();
  relay.start();
  expect(await metric("meshwork_outbox_backlog")).toBe(3);

  // o-flaky fails twice then succeeds; o-poison fails every time and is dead-lettered at the 3rd delivery.
  const failures = new Map<string, number>([["o-flaky", 2], ["o-poison", Number.POSITIVE_INFINITY]]);
  const consumer = new EventConsumer({
    nats: nc,
    database: db.database,
    durable: "em-notifications",
    stream: def.name,
    filterSubjects: [subject],
    maxDeliver: 3,
    nakBackoff: { initialMs: 20, maxMs: 50 },
    handlers: [
      on(OrderPlacedSchema, async (p, env, trx, d) => {
        const left = failures.get(p.orderId) ?? 0;
        if (left > 0) {
          failures.set(p.orderId, left - 1);
          throw new Error(`handler of ${p.orderId} failed (delivery ${d.deliveryCount})`);
        }
        await recordEffect.handle(p, env, trx, d);
      }),
    ],
  });
  await consumer.start();
  expect(await metric("meshwork_dlq_messages", { stream: "DLQ" })).toBe(0);

  connected = nc;
  relay.kick();
  await waitFor(async () => (await metric("meshwork_dlq_messages", { stream: "DLQ" })) === 1 && (await countEffects(db.database)).rows === 2, { timeoutMs: 15_000, what: "one dead letter and two effects" });
  expect(await metric("meshwork_outbox_backlog")).toBe(0);
  // o-flaky: deliveries 2 and 3; o-poison: deliveries 2 and 3. o-ok: none.
  expect(await metric("meshwork_consumer_redeliveries_total", { consumer: "em-notifications", stream: def.name })).toBe(4);

  await consumer.stop();
  await relay.stop();
});
