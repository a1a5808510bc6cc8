/**
 * R6b (RELIABILITY.md): the outbox relay is killed (SIGKILL, a separate process) after JetStream
 * acked a batch and before the rows were marked sent, on SQLite and on PostgreSQL. A restarted
 * relay publishes the batch again; the copies must have no second effect:
 * - inside the 2-minute window JetStream drops them by `Nats-Msg-Id` (the relay counts duplicates);
 * - past the window (simulated by publishing the same envelopes under fresh message ids) the
 *   consumer's inbox drops them.
 * Passes when the stream holds each event once after the restart, and the consumer recorded
 * exactly one effect per event after both kinds of copy.
 */
import { connect, type NatsConnection } from "nats";
import { join } from "node:path";
import { transaction } from "../../../mesh/db/index.js";
import { DIALECTS } from "../../../mesh/db/testing.js";
import { DLQ_STREAM, domainStream, ensureStreams, EventConsumer, OutboxRelay } from "../../../mesh/events/index.js";
import { countEffects, openTestDb, placeOrder, recordEffect } from "../../../mesh/events/test-support.js";
import { postgresAvailable, startNats, startProcess, tsxArgs, waitFor } from "../../../mesh/infra/index.js";
import type { History } from "../history.js";
import type { Scenario, ScenarioOutcome } from "../scenario.js";

const SCALES = {
  full: { events: 500 },
  fast: { events: 50 },
};

const CRASH_FIXTURE = join(__dirname, "..", "..", "..", "mesh", "events", "relay-crash.fixture.ts");

/** One dialect's run; returns its failures and figures. */
async function runOn(dialect: "sqlite" | "postgres", nc: NatsConnection, natsUrl: string, events: number, history: History, log: (l: string) => void): Promise<{ failures: string[]; figures: Record<string, number> }> {
  const failures: string[] = [];
  const domain = `r6b${dialect}`;
  const stream = domainStream(domain).name;
  const subject = `${domain}.order_placed`;
  const jsm = await nc.jetstreamManager();
  await ensureStreams(jsm, [domainStream(domain), DLQ_STREAM]);
  const t = await openTestDb(dialect);
  const cleanups: (() => Promise<unknown>)[] = [() => t.dispose()];
  try {
    // Relay batches are 100 rows: the crash leaves one acked batch unmarked.
    for (let i = 0; i < events; i++) await transaction(t.database, (trx) => placeOrder(trx, `${dialect}-${i}`, subject));
    const durable = `effects-${domain}`;
    const consumer = new EventConsumer({ nats: nc, database: t.database, durable, stream, filterSubjects: [subject], handlers: [recordEffect] });
    await consumer.start();
    cleanups.unshift(() => consumer.stop());
    const backlog = () => new OutboxRelay({ database: t.database, nats: () => undefined }).backlog();

    // The relay process dies at the crash point: after the publish ack, before mark-sent.
    const start = Date.now();
    const child = startProcess(process.execPath, tsxArgs(CRASH_FIXTURE, t.url, natsUrl));
    cleanups.unshift(() => child.kill());
    const exit = await child.exited;
    history.mark(`${dialect}: relay SIGKILLed after publish`);
    const crashedBatch = Number(/published (\d+)/.exec(child.output())?.[1] ?? 0);
    history.record({ id: history.id(), method: "relay-crash.fixture publish", start, end: Date.now(), code: exit.signal === "SIGKILL" || exit.code === 137 ? "ok" : "error", attempts: 1, note: `published ${crashedBatch}, exit ${JSON.stringify(exit)}` });
    if (!(exit.signal === "SIGKILL" || exit.code === 137)) failures.push(`${dialect}: the crash fixture was not killed at the crash point: ${JSON.stringify(exit)} ${child.output().slice(-300)}`);
    if (crashedBatch === 0) failures.push(`${dialect}: the crash fixture published nothing before dying`);
    const unmarked = await backlog();
    if (unmarked !== events) failures.push(`${dialect}: ${unmarked} rows unsent after the crash, want all ${events}`);

    // A restarted relay republishes the acked batch: JetStream drops the copies inside its window.
    const relayStart = Date.now();
    const relay = new OutboxRelay({ database: t.database, nats: () => nc, pollIntervalMs: 100 });
    relay.start();
    cleanups.unshift(() => relay.stop());
    await waitFor(async () => (await backlog()) === 0, { what: `${dialect}: backlog drained by the restarted relay` });
    history.record({ id: history.id(), method: "OutboxRelay publish", start: relayStart, end: Date.now(), code: "ok", attempts: 1, note: JSON.stringify(relay.stats) });
    if (relay.stats.duplicates !== crashedBatch) failures.push(`${dialect}: the restarted relay saw ${relay.stats.duplicates} duplicates, want the ${crashedBatch} of the crashed batch`);
    const stored = (await jsm.streams.info(stream)).state.messages;
    if (stored !== events) failures.push(`${dialect}: stream holds ${stored} messages for ${events} events`);
    await waitFor(async () => (await countEffects(t.database)).rows >= events, { what: `${dialect}: effects of every event` });

    // Past the dedup window: the same envelopes again under fresh message ids reach the consumer,
    // and its inbox must drop every one.
    const js = nc.jetstream();
    for (let seq = 1; seq <= stored; seq++) {
      const m = await jsm.streams.getMessage(stream, { seq });
      await js.publish(m.subject, m.data, { msgID: `late-copy-${m.header.get("Nats-Msg-Id")}` });
    }
    await waitFor(
      async () => {
        const ci = await jsm.consumers.info(stream, durable);
        return ci.delivered.stream_seq >= 2 * events && ci.num_ack_pending === 0 && ci.num_pending === 0;
      },
      { what: `${dialect}: late copies delivered and acked` },
    );
    const effects = await countEffects(t.database);
    if (effects.rows !== events || effects.orders !== events) failures.push(`${dialect}: ${effects.rows} effects for ${effects.orders} orders after the copies, want ${events} once each`);
    log(`${dialect}: crashed batch ${crashedBatch}, relay ${JSON.stringify(relay.stats)}, effects ${effects.rows}`);
    return {
      failures,
      figures: { [`${dialect} events`]: events, [`${dialect} dedup by JetStream`]: relay.stats.duplicates, [`${dialect} dedup by inbox`]: stored, [`${dialect} effects`]: effects.rows },
    };
  } finally {
    for (const c of cleanups) await c().catch(() => undefined);
  }
}

export const scenario: Scenario = {
  id: "R6b",
  title: "relay killed between publish and mark-sent",
  fast: true,
  async run(ctx): Promise<ScenarioOutcome> {
    const s = SCALES[ctx.scale];
    const nats = await startNats({ storeDir: join(ctx.dir, "nats") });
    const nc = await connect({ servers: nats.url });
    const failures: string[] = [];
    const figures: Record<string, number | string> = {};
    try {
      for (const dialect of DIALECTS) {
        if (dialect === "postgres" && !(await postgresAvailable())) {
          failures.push("PostgreSQL is not reachable at 127.0.0.1:5432 (scripts/ensure-infra.sh starts it)");
          continue;
        }
        const r = await runOn(dialect, nc, nats.url, s.events, ctx.history, ctx.log);
        failures.push(...r.failures);
        Object.assign(figures, r.figures);
      }
      return { failures, figures };
    } finally {
      await nc.close();
      await nats.stop({ keepData: true });
    }
  },
};
