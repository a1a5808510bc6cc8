/**
 * R6 (RELIABILITY.md): the broker is stopped while orders commit. The shop runs as processes
 * (orders, catalog, inventory, payments, notifications with their SQLite databases, a real etcd
 * and nats-server); checkout load runs at one steady rate before and during a full NATS outage,
 * then nats-server restarts on the same port and store. Passes when the RPC success rate during the
 * outage equals the rate before (RPCs never wait for the broker), every event committed to an
 * outbox is in its stream exactly once after the restart, every consumer effect happened exactly
 * once (one inbox row and one notification per event, one payment link per authorization), and
 * stock and money balance.
 *
 * Durability mode (reported in the figures): JetStream file storage, one replica, nats-server's
 * default periodic fsync (mesh/events/streams.ts). The outage is a clean stop, so nothing here
 * depends on fsync; a power loss could still lose acknowledged messages (Jepsen 2025).
 */
import type { NatsConnection } from "nats";
import { connect } from "nats";
import { domainStream } from "../../../mesh/events/index.js";
import { waitFor } from "../../../mesh/infra/index.js";
import { atLeast, byCode, failed, sample } from "../checks.js";
import type { CallRecord } from "../history.js";
import type { Scenario, ScenarioOutcome } from "../scenario.js";
import { CARDS, balanceViolations, firstOf, orderRows, outboxBacklog, STOCKED_PRODUCTS } from "../fixtures/shop-checks.js";
import { mustConfirm, placeOrders, type CheckoutInit } from "../fixtures/shop-load.js";
import { startShop, type Shop } from "../fixtures/shop.js";

const SCALES = {
  // RELIABILITY.md: 1,000 orders during a 60 s outage; 200 before it give the reference rate.
  // 16 in flight: at 1,000/60 s a checkout taking up to ~1 s still keeps the pace.
  full: { before: 200, during: 1_000, outageMs: 60_000, perSecond: 1_000 / 60, concurrency: 16, drainTimeoutMs: 120_000 },
  // Inside npm test: the same shape at a size a loaded 2-core CI machine runs in ~30 s.
  fast: { before: 20, during: 60, outageMs: 5_000, perSecond: 12, concurrency: 8, drainTimeoutMs: 45_000 },
};

/** The producers whose outboxes feed JetStream, and the consumers of their events. */
const PRODUCERS = ["orders", "payments", "inventory"] as const;

/** nats-server 2.9.10 (Debian) with the stream settings of mesh/events/streams.ts. */
export const DURABILITY_MODE = "JetStream file storage, 1 replica, periodic fsync (nats-server default)";

function request(i: number): CheckoutInit {
  return {
    idempotencyKey: `r6-${i}`,
    customerId: `c-${i % 25}`,
    currencyCode: "EUR",
    cardNumber: CARDS.approved,
    items: [{ productId: STOCKED_PRODUCTS[i % STOCKED_PRODUCTS.length], quantity: 1 }],
  };
}

const rate = (calls: CallRecord[]) => (calls.length === 0 ? 0 : (calls.length - failed(calls).length) / calls.length);
const median = (xs: number[]) => (xs.length === 0 ? 0 : [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]);

/** Every `Nats-Msg-Id` stored in `stream`, in sequence order, with its subject. */
async function streamIds(nc: NatsConnection, stream: string): Promise<{ id: string; subject: string }[]> {
  const jsm = await nc.jetstreamManager();
  const info = await jsm.streams.info(stream);
  const out: { id: string; subject: string }[] = [];
  // 64 lookups in flight: ~1 ms each on loopback, so thousands of messages read in about a second.
  const seqs = Array.from({ length: info.state.last_seq - info.state.first_seq + 1 }, (_, i) => info.state.first_seq + i);
  for (let i = 0; i < seqs.length; i += 64) {
    const got = await Promise.all(seqs.slice(i, i + 64).map((seq) => jsm.streams.getMessage(stream, { seq }).catch(() => undefined)));
    for (const m of got) if (m) out.push({ id: m.header.get("Nats-Msg-Id"), subject: m.subject });
  }
  return out;
}

export const scenario: Scenario = {
  id: "R6",
  title: "broker down while orders commit",
  fast: true,
  async run(ctx): Promise<ScenarioOutcome> {
    const s = SCALES[ctx.scale];
    const failures: (string | undefined)[] = [];
    const figures: Record<string, number | string> = { durability: DURABILITY_MODE };
    const shop: Shop = await startShop({ dir: ctx.dir });
    let nc: NatsConnection | undefined;
    try {
      ctx.log(`shop ready in ${shop.mesh.readyMs} ms; ${s.before} orders before the outage`);
      await placeOrders(shop, ctx.history, { count: s.before, perSecond: s.perSecond, concurrency: s.concurrency, request, judge: mustConfirm });

      const down = ctx.history.mark("broker stopped");
      shop.note("broker stopped");
      await shop.nats.stop({ keepData: true });
      ctx.log(`broker stopped; ${s.during} orders over at least ${s.outageMs / 1_000} s`);
      // The outage lasts until both the planned time has passed and every order of the phase has
      // ended, so all of them commit while the broker is down even on a slow machine.
      await Promise.all([
        placeOrders(shop, ctx.history, { count: s.during, from: s.before, perSecond: s.perSecond, concurrency: s.concurrency, request, judge: mustConfirm }),
        new Promise((r) => setTimeout(r, s.outageMs)),
      ]);
      const backlogAtRestart = PRODUCERS.reduce((n, p) => n + outboxBacklog(shop, p), 0);
      const up = ctx.history.mark("broker restarted");
      shop.note("broker restarting");
      await shop.nats.restart();
      const restartedAt = Date.now();
      ctx.log(`broker restarted after ${restartedAt - down} ms with ${backlogAtRestart} events waiting`);

      // Drained: every outbox is empty and both consumers have an inbox row for every event they take.
      const consumed = () => ({
        notifications: (shop.db("notifications").prepare("select count(*) as n from meshwork_inbox where consumer = 'notifications-orders'").get() as { n: number }).n,
        ordersLinks: (shop.db("orders").prepare("select count(*) as n from meshwork_inbox where consumer = 'orders-payments'").get() as { n: number }).n,
      });
      const expected = () => ({
        notifications: (shop.db("orders").prepare("select count(*) as n from meshwork_outbox").get() as { n: number }).n,
        ordersLinks: (shop.db("payments").prepare("select count(*) as n from meshwork_outbox where subject = 'payments.payment_authorized'").get() as { n: number }).n,
      });
      try {
        await waitFor(
          () => {
            const c = consumed();
            const e = expected();
            return PRODUCERS.every((p) => outboxBacklog(shop, p) === 0) && c.notifications >= e.notifications && c.ordersLinks >= e.ordersLinks;
          },
          { timeoutMs: s.drainTimeoutMs, intervalMs: 100, what: "outboxes drained and every event consumed" },
        );
      } catch (e) {
        failures.push(`${(e as Error).message}: backlog ${PRODUCERS.map((p) => `${p} ${outboxBacklog(shop, p)}`).join(", ")}; consumed ${JSON.stringify(consumed())} of ${JSON.stringify(expected())}`);
      }
      const drainMs = Date.now() - restartedAt;

      // RPCs: the same success rate during the outage as before it, and every order placed.
      const calls = ctx.history.calls;
      const before = calls.filter((c) => c.start < down);
      const during = calls.filter((c) => c.start >= down && c.start < up);
      const rBefore = rate(before);
      const rDuring = rate(during);
      if (rDuring < rBefore) failures.push(`RPC success during the outage ${(rDuring * 100).toFixed(2)} % < before ${(rBefore * 100).toFixed(2)} %: ${JSON.stringify(byCode(during))}; ${sample(failed(during))}`);
      failures.push(atLeast("orders placed during the outage", during.length - failed(during).length, s.during));
      failures.push(atLeast("events waiting in outboxes at the restart (the outage really held them)", backlogAtRestart, s.during));

      // Published: every committed event is in its stream, once.
      nc = await connect({ servers: shop.nats.url });
      let published = 0;
      for (const p of PRODUCERS) {
        const stored = await streamIds(nc, domainStream(p).name);
        const ids = new Set(stored.map((m) => m.id));
        published += stored.length;
        if (ids.size !== stored.length) failures.push(`${domainStream(p).name} stores ${stored.length - ids.size} duplicate events`);
        const committed = (shop.db(p).prepare("select id from meshwork_outbox").all() as { id: string }[]).map((r) => r.id);
        const lost = committed.filter((id) => !ids.has(id));
        if (lost.length > 0) failures.push(`${lost.length} of ${committed.length} events committed by ${p} were never published (e.g. ${lost.slice(0, 3).join(", ")})`);
      }

      // Effects exactly once: a notification per orders event, a payment link per authorization.
      const orderEvents = shop.db("orders").prepare("select id, type from meshwork_outbox").all() as { id: string; type: string }[];
      const notified = new Map(
        (shop.db("notifications").prepare("select source_event_id, count(*) as n from notifications group by source_event_id").all() as { source_event_id: string; n: number }[]).map((r) => [r.source_event_id, r.n]),
      );
      const notOnce = orderEvents.filter((e) => notified.get(e.id) !== 1);
      failures.push(firstOf("orders events without exactly one notification", notOnce.map((e) => `${e.type} ${e.id}: ${notified.get(e.id) ?? 0}`)));
      const perOrder = shop.db("notifications").prepare("select order_id, kind, count(*) as n from notifications group by order_id, kind having n <> 1").all() as { order_id: string; kind: string; n: number }[];
      failures.push(firstOf("orders with a repeated notification", perOrder.map((r) => `${r.order_id} ${r.kind} ×${r.n}`)));
      const missingKinds = orderRows(shop).filter((o) => o.status === "CONFIRMED").length - (shop.db("notifications").prepare("select count(*) as n from notifications where kind = 'ORDER_CONFIRMED'").get() as { n: number }).n;
      if (missingKinds !== 0) failures.push(`${missingKinds} confirmed orders without their ORDER_CONFIRMED notification`);
      const links = shop.db("orders").prepare("select order_id, payment_id, count(*) as n from order_payments group by order_id, payment_id having n <> 1").all();
      failures.push(firstOf("payments linked more than once", links.map((l) => JSON.stringify(l))));
      failures.push(firstOf("stock and money", balanceViolations(shop)));

      // Deliveries the inboxes absorbed: a consumer's deliveries beyond the messages it matched.
      const jsm = await nc.jetstreamManager();
      let duplicates = 0;
      for (const [stream, durable, takes] of [
        ["ORDERS", "notifications-orders", (_: string) => true],
        ["PAYMENTS", "orders-payments", (subject: string) => subject === "payments.payment_authorized"],
      ] as const) {
        const info = await jsm.consumers.info(stream, durable);
        const matching = (await streamIds(nc, stream)).filter((m) => takes(m.subject)).length;
        duplicates += Math.max(0, info.delivered.consumer_seq - matching);
      }

      Object.assign(figures, {
        "orders before": before.length,
        "orders during outage": during.length,
        "RPC ok before %": rBefore * 100,
        "RPC ok during %": rDuring * 100,
        "p50 ms before": median(before.map((c) => c.end - c.start)),
        "p50 ms during": median(during.map((c) => c.end - c.start)),
        "outage s": (up - down) / 1_000,
        "events waiting at restart": backlogAtRestart,
        "events published": published,
        "duplicates suppressed": duplicates,
        "drain ms": drainMs,
      });
      return { failures: failures.filter((f): f is string => f !== undefined), figures };
    } finally {
      await nc?.close();
      await shop.stop();
    }
  },
};
