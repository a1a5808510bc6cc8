/**
 * R7 (RELIABILITY.md): the checkout saga against the real shop processes.
 * 1. Failure at each step: orders that fail at the catalog step (unknown, inactive product), at
 *    reserve (sold out), at authorize (declined, insufficient funds, processing error) beside ones
 *    that succeed; each answers its documented code and reason, and the failed ones keep nothing.
 * 2. A dependency dies mid-step: payments is killed (-9) while sagas wait in Authorize; the
 *    supervisor restarts it.
 * 3. The orchestrator dies mid-saga: orders is killed (-9) while checkouts are at every step; the
 *    supervisor restarts it and it resumes the dead process's sagas after their lease.
 * Passes when every saga completes or compensates, stock and money balance (read from the
 * inventory and payments databases), and no effect happened twice for an order.
 * The step-by-step compensation order (void before release, retried compensations) is proven
 * in-process with fakes by services/orders/checkout.test.ts.
 */
import { ConnectError } from "@connectrpc/connect";
import { ErrorDetailSchema } from "../../../gen/meshwork/v1/errors_pb.js";
import { OrderService, OrderStatus } from "../../../gen/orders/v1/orders_pb.js";
import { waitFor } from "../../../mesh/infra/index.js";
import { byCode, failed, sample } from "../checks.js";
import { codeName } from "../history.js";
import type { Scenario, ScenarioOutcome } from "../scenario.js";
import { CARDS, firstOf, orderRows, settledBalance, STOCKED_PRODUCTS, waitSettled } from "../fixtures/shop-checks.js";
import { CHECKOUT, placeOrders, type CheckoutInit } from "../fixtures/shop-load.js";
import { startShop, type Shop } from "../fixtures/shop.js";

const SCALES = {
  full: { perKind: 10, dependencyOrders: 30, orchestratorOrders: 200, perSecond: 10, concurrency: 24, settleTimeoutMs: 90_000 },
  // Inside npm test: every step and the orchestrator kill with a handful of orders; the payments
  // kill (a second cold process start and a circuit breaker to recover) only at full scale.
  fast: { perKind: 2, dependencyOrders: 0, orchestratorOrders: 24, perSecond: 8, concurrency: 16, settleTimeoutMs: 45_000 },
};

// 1 s in Authorize for the slow card: at a kill, many sagas are inside that call.
const SLOW_CARD_MS = 1_000;
// 2 s saga lease: the restarted orders resumes the killed one's sagas 2 s after its last renewal.
const SAGA_LEASE_MS = 2_000;

/** Step failures: what to send, and the code and ErrorDetail reason CreateOrder must answer. */
const STEP_KINDS: { step: string; init: Partial<CheckoutInit>; code: string; reason?: string }[] = [
  { step: "none", init: {}, code: "ok" },
  { step: "catalog: unknown product", init: { items: [{ productId: "prod-999", quantity: 1 }] }, code: "failedPrecondition", reason: "ERROR_REASON_PRODUCT_NOT_FOUND" },
  { step: "catalog: inactive product", init: { items: [{ productId: "prod-008", quantity: 1 }] }, code: "failedPrecondition", reason: "ERROR_REASON_PRODUCT_INACTIVE" },
  { step: "reserve: sold out", init: { items: [{ productId: "prod-016", quantity: 1 }] }, code: "failedPrecondition", reason: "ERROR_REASON_OUT_OF_STOCK" },
  { step: "authorize: declined", init: { cardNumber: CARDS.declined }, code: "failedPrecondition", reason: "ERROR_REASON_PAYMENT_DECLINED" },
  { step: "authorize: insufficient funds", init: { cardNumber: CARDS.insufficientFunds }, code: "failedPrecondition", reason: "ERROR_REASON_PAYMENT_DECLINED" },
  { step: "authorize: processing error", init: { cardNumber: CARDS.processingError }, code: "failedPrecondition", reason: "ERROR_REASON_PAYMENT_FAILED" },
];

// Three tries of a step order answered Unavailable: the machine is overloaded, not the saga wrong.
const STEP_ATTEMPTS = 3;
// Codes a call may end with when the process serving it is killed under it.
const CUT_OFF_CODES = new Set(["unavailable", "aborted", "canceled", "deadlineExceeded", "unknown", "internal"]);

function order(key: string, i: number, over: Partial<CheckoutInit> = {}): CheckoutInit {
  return {
    idempotencyKey: `r7-${key}-${i}`,
    customerId: `c-${i % 5}`,
    currencyCode: "EUR",
    cardNumber: CARDS.approved,
    items: [{ productId: STOCKED_PRODUCTS[i % STOCKED_PRODUCTS.length], quantity: 1 + (i % 2) }],
    ...over,
  };
}

const count = (shop: Shop, sql: string) => (shop.db("payments").prepare(sql).get() as { n: number }).n;

export const scenario: Scenario = {
  id: "R7",
  title: "checkout saga: failure at each step, dependency and orchestrator kill -9",
  fast: true,
  async run(ctx): Promise<ScenarioOutcome> {
    const s = SCALES[ctx.scale];
    const failures: (string | undefined)[] = [];
    // Notifications only consumes events; the saga does not need it.
    const shop = await startShop({ dir: ctx.dir, services: ["catalog", "inventory", "payments", "orders"], env: { ORDERS_SAGA_LEASE_MS: String(SAGA_LEASE_MS), PAYMENTS_SLOW_CARD_DELAY_MS: String(SLOW_CARD_MS) } });
    try {
      ctx.log(`shop ready in ${shop.mesh.readyMs} ms`);
      const orders = shop.client(OrderService);

      // A checkout goes through end to end before the faults (first calls pay for cold discovery
      // and connections), and again after a dependency came back (its circuit breaker must close).
      let probe = 0;
      const checkoutWorks = (what: string) =>
        waitFor(async () => (await orders.createOrder(order("probe", probe++), { timeoutMs: 10_000 }).catch(() => undefined))?.order?.status === OrderStatus.CONFIRMED, {
          timeoutMs: 60_000,
          intervalMs: 500,
          what: `a checkout succeeding ${what}`,
        });
      await checkoutWorks("on the fresh shop");

      // 1. Failure at each step: the kinds run side by side, each kind's orders one after another.
      // A call the overloaded machine answers Unavailable (e.g. the catalog deadline passed, nothing
      // kept) is retried with the same key, as a client would; the business answer must come.
      const stepStart = Date.now();
      await Promise.all(
        STEP_KINDS.map(async (kind, k) => {
          for (let j = 0; j < s.perKind; j++) {
            const req = order(`step${k}`, k * s.perKind + j, kind.init);
            const id = ctx.history.id();
            const start = Date.now();
            let code = "unavailable";
            let reason: string | undefined;
            let attempts = 0;
            while (code === "unavailable" && attempts < STEP_ATTEMPTS) {
              attempts++;
              code = "ok";
              reason = undefined;
              try {
                const res = await orders.createOrder(req, { timeoutMs: 10_000 });
                if (res.order?.status !== OrderStatus.CONFIRMED) code = `status${OrderStatus[res.order?.status ?? 0]}`;
              } catch (e) {
                const err = ConnectError.from(e);
                code = codeName(err);
                reason = err.findDetails(ErrorDetailSchema)[0]?.reason;
              }
            }
            ctx.history.record({ id, method: CHECKOUT, start, end: Date.now(), code, attempts, note: `${kind.step}: ${reason ?? "-"}` });
            if (code !== kind.code || reason !== kind.reason) failures.push(`${kind.step}: answered ${code} ${reason ?? ""}, want ${kind.code} ${kind.reason ?? ""}`);
          }
        }),
      );
      ctx.log(`step failures checked in ${Date.now() - stepStart} ms`);

      // 2. payments killed while sagas wait in Authorize (slow card).
      const loadStart = Date.now();
      let killedInAuthorize = 0;
      if (s.dependencyOrders > 0) {
        const paymentsPid = shop.pid("payments-1")!;
        const depLoad = placeOrders(shop, ctx.history, {
          count: s.dependencyOrders,
          perSecond: s.perSecond * 2,
          concurrency: s.concurrency,
          request: (i) => order("dep", i, { cardNumber: CARDS.slow }),
        });
        // Reserved but not yet authorized: those sagas are inside Authorize now.
        const inAuthorize = () => orderRows(shop).filter((o) => o.idempotency_key.startsWith("r7-dep-") && o.status === "PENDING" && o.reservation_id !== "" && o.payment_id === "").length;
        await waitFor(() => inAuthorize() >= 3, { timeoutMs: 30_000, intervalMs: 20, what: "sagas inside Authorize" }).catch(() => undefined);
        killedInAuthorize = inAuthorize();
        if (killedInAuthorize === 0) failures.push("no saga was inside Authorize when payments was killed: the kill proved nothing");
        ctx.history.mark("SIGKILL payments");
        shop.note("SIGKILL payments-1");
        process.kill(paymentsPid, "SIGKILL");
        await depLoad;
        await shop.waitRestarted("payments-1", paymentsPid);
        await waitSettled(shop, s.settleTimeoutMs).catch((e: Error) => failures.push(`after the payments kill: ${e.message}`));
        await checkoutWorks("after payments restarted");
      }

      // 3. orders (the orchestrator) killed with checkouts at every step.
      const ordersPid = shop.pid("orders-1")!;
      const capturedBefore = count(shop, "select count(*) as n from payments where status = 'CAPTURED'");
      let killedAt = 0;
      let pendingAtKill = 0;
      const orchStart = Date.now();
      const load = placeOrders(shop, ctx.history, {
        count: s.orchestratorOrders,
        perSecond: s.perSecond,
        concurrency: s.concurrency,
        request: (i) => order("orch", i, { cardNumber: i % 2 === 0 ? CARDS.slow : CARDS.approved }),
      });
      // Some checkouts complete before the kill, others are still running.
      await waitFor(() => count(shop, "select count(*) as n from payments where status = 'CAPTURED'") >= capturedBefore + 3, { timeoutMs: 60_000, intervalMs: 20, what: "first captures" });
      pendingAtKill = orderRows(shop).filter((o) => o.status === "PENDING").length;
      if (pendingAtKill === 0) failures.push("no saga was in flight when orders was killed: the kill proved nothing");
      killedAt = ctx.history.mark("SIGKILL orders");
      shop.note("SIGKILL orders-1");
      process.kill(ordersPid, "SIGKILL");
      await shop.waitRestarted("orders-1", ordersPid);
      const restartedAt = Date.now();
      await load;
      await waitSettled(shop, s.settleTimeoutMs).catch((e: Error) => failures.push(`after the orders kill: ${e.message}`));
      const settleMs = Date.now() - restartedAt;

      // Stock and money balance; late authorizations (answered after a kill) get voided through
      // their PaymentAuthorized events, so give the sweep time before judging.
      failures.push(firstOf("stock and money", await settledBalance(shop, s.settleTimeoutMs)));
      // Effects at most once per order: one reservation per order (its id is derived from the
      // order), at most one capture.
      const twiceReserved = shop.db("inventory").prepare("select order_id, count(*) as n from reservations group by order_id having n > 1").all() as { order_id: string; n: number }[];
      failures.push(firstOf("orders reserved twice", twiceReserved.map((r) => `${r.order_id} ×${r.n}`)));
      const twiceCaptured = shop.db("payments").prepare("select order_id, count(*) as n from payments where status = 'CAPTURED' group by order_id having n > 1").all() as { order_id: string; n: number }[];
      failures.push(firstOf("orders captured twice", twiceCaptured.map((r) => `${r.order_id} ×${r.n}`)));

      // Calls cut off by a kill end with a transport code, never a wrong business answer.
      const odd = failed(ctx.history.calls.filter((c) => c.start >= loadStart)).filter((c) => !CUT_OFF_CODES.has(c.code));
      if (odd.length > 0) failures.push(`calls failed with unexpected codes: ${JSON.stringify(byCode(odd))}; ${sample(odd)}`);

      const rows = orderRows(shop);
      const pays = shop.db("payments").prepare("select status, count(*) as n from payments group by status").all() as { status: string; n: number }[];
      const res = shop.db("inventory").prepare("select status, count(*) as n from reservations group by status").all() as { status: string; n: number }[];
      return {
        failures: failures.filter((f): f is string => f !== undefined),
        figures: {
          orders: rows.length,
          confirmed: rows.filter((o) => o.status === "CONFIRMED").length,
          failed: rows.filter((o) => o.status === "FAILED").length,
          "in Authorize at payments kill": killedInAuthorize,
          "pending at orders kill": pendingAtKill,
          "calls cut off": failed(ctx.history.calls.filter((c) => c.start >= orchStart)).length,
          "orders restart ms": restartedAt - killedAt,
          "settled ms after restart": settleMs,
          payments: pays.map((p) => `${p.status} ${p.n}`).join(" "),
          reservations: res.map((r) => `${r.status} ${r.n}`).join(" "),
        },
      };
    } finally {
      await shop.stop();
    }
  },
};
