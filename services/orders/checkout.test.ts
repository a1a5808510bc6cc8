import { create } from "@bufbuild/protobuf";
import { Code } from "@connectrpc/connect";
import { randomUUID } from "node:crypto";
import { MoneySchema, type Money } from "../../gen/common/v1/money_pb.js";
import { OrderStatus, type Order } from "../../gen/orders/v1/orders_pb.js";
import { waitFor } from "../../mesh/infra/index.js";
import { failureOf, outboxTypes } from "./testing/assertions.js";
import { CARDS, invariantViolations, type Effect } from "./testing/fakes.js";
import { startOrdersHarness, type OrdersHarness } from "./testing/harness.js";

let h: OrdersHarness;
beforeEach(async () => {
  h = await startOrdersHarness();
});
afterEach(async () => {
  await h.close();
});

interface CreateInit {
  idempotencyKey: string;
  customerId: string;
  currencyCode: string;
  cardNumber: string;
  items: { productId: string; quantity: number; expectedUnitPrice?: Money }[];
}
function eur(minor: number) {
  return create(MoneySchema, { currencyCode: "EUR", amountMinor: BigInt(minor) });
}

function request(over: Partial<CreateInit> = {}): CreateInit {
  return {
    idempotencyKey: randomUUID(),
    customerId: "c-1",
    currencyCode: "EUR",
    cardNumber: CARDS.ok,
    items: [
      { productId: "p-1", quantity: 2, expectedUnitPrice: eur(1999) },
      { productId: "p-2", quantity: 1 },
    ],
    ...over,
  };
}

async function allOrders(): Promise<Order[]> {
  const out: Order[] = [];
  for (const customerId of ["c-1", "c-2"]) {
    let pageToken = "";
    do {
      const page = await h.client.listOrders({ customerId, pageSize: 100, pageToken });
      out.push(...page.orders);
      pageToken = page.nextPageToken;
    } while (pageToken);
  }
  return out;
}

/** Waits until no saga is left running, then checks stock and money. */
async function expectConsistent(): Promise<void> {
  await waitFor(async () => (await allOrders()).every((o) => o.status !== OrderStatus.PENDING), { what: "every order terminal", timeoutMs: 10_000 });
  expect(invariantViolations(await allOrders(), h.inventory, h.payments, h.initialStock)).toEqual([]);
}

function effectsOf(orderId: string): string[] {
  const all: Effect[] = [...h.inventory.effects, ...h.payments.effects].filter((e) => e.orderId === orderId);
  return all.sort((a, b) => a.seq - b.seq).map((e) => e.op);
}

describe("checkout saga", () => {
  test("happy path: CONFIRMED, stock sold, payment captured, events placed and confirmed", async () => {
    const { order } = await h.client.createOrder(request());
    expect(order?.status).toBe(OrderStatus.CONFIRMED);
    expect(order?.total?.amountMinor).toBe(2n * 1999n + 500n);
    expect(order?.items.map((i) => [i.productId, i.name, i.quantity, Number(i.unitPrice?.amountMinor)])).toEqual([
      ["p-1", "Teapot", 2, 1999],
      ["p-2", "Mug", 1, 500],
    ]);
    expect(order?.reservationId).toBe(`res-${order!.id}`);
    expect(h.payments.payments.get(order!.paymentId)?.status).toBe("CAPTURED");
    expect(h.inventory.stock.get("p-1")).toEqual({ available: 98, reserved: 0, sold: 2 });
    expect(effectsOf(order!.id)).toEqual(["reserve", "authorize", "commit", "capture"]);
    expect(await outboxTypes(h.database, order!.id)).toEqual(["orders.v1.OrderPlaced", "orders.v1.OrderConfirmed"]);
    await expectConsistent();
  });

  test("a transient forward failure is retried: Reserve unavailable once still confirms", async () => {
    h.inventory.faults.fail("Reserve", 1, Code.Unavailable);
    const { order } = await h.client.createOrder(request());
    expect(order?.status).toBe(OrderStatus.CONFIRMED);
    expect(h.inventory.faults.calls.get("Reserve")).toBe(2);
    await expectConsistent();
  });

  test("catalog unavailable: Unavailable, nothing kept; the same key succeeds once the catalog is back", async () => {
    h.catalog.faults.fail("GetProduct", Infinity, Code.Unavailable);
    const req = request();
    const f = await failureOf(h.client.createOrder(req));
    expect(f.code).toBe(Code.Unavailable);
    expect(await allOrders()).toEqual([]);
    expect(h.inventory.effects).toEqual([]);
    h.catalog.faults.clear();
    const { order } = await h.client.createOrder(req);
    expect(order?.status).toBe(OrderStatus.CONFIRMED);
    await expectConsistent();
  });

  test.each([
    ["price changed", { items: [{ productId: "p-1", quantity: 1, expectedUnitPrice: eur(1500) }] }, "ERROR_REASON_PRICE_CHANGED", { product_id: "p-1", current_amount_minor: "1999" }],
    ["unknown product", { items: [{ productId: "p-nope", quantity: 1 }] }, "ERROR_REASON_PRODUCT_NOT_FOUND", { product_id: "p-nope" }],
    ["inactive product", { items: [{ productId: "p-old", quantity: 1 }] }, "ERROR_REASON_PRODUCT_INACTIVE", { product_id: "p-old" }],
    ["currency mismatch", { items: [{ productId: "p-usd", quantity: 1 }] }, "ERROR_REASON_CURRENCY_MISMATCH", { product_id: "p-usd" }],
  ])("validation fails (%s): FAILED with the reason, nothing reserved or charged", async (_name, over, reason, meta) => {
    const f = await failureOf(h.client.createOrder(request(over)));
    expect(f).toMatchObject({ code: Code.FailedPrecondition, reason, domain: "orders.v1", metadata: meta });
    const { order } = await h.client.getOrder({ orderId: f.metadata.order_id });
    expect(order?.status).toBe(OrderStatus.FAILED);
    expect(h.inventory.effects).toEqual([]);
    expect(h.payments.effects).toEqual([]);
    expect(await outboxTypes(h.database, order!.id)).toEqual(["orders.v1.OrderPlaced", "orders.v1.OrderFailed"]);
    await expectConsistent();
  });

  test("reserve out of stock: OUT_OF_STOCK with what is available, no payment attempted", async () => {
    const f = await failureOf(h.client.createOrder(request({ items: [{ productId: "p-3", quantity: 5 }] })));
    expect(f).toMatchObject({ code: Code.FailedPrecondition, reason: "ERROR_REASON_OUT_OF_STOCK", metadata: { product_id: "p-3", available: "2" } });
    expect(h.payments.faults.calls.get("Authorize")).toBeUndefined();
    expect(effectsOf(f.metadata.order_id)).toEqual([]);
    await expectConsistent();
  });

  test("authorize declined: PAYMENT_DECLINED, the reservation released, no void of a declined payment", async () => {
    const f = await failureOf(h.client.createOrder(request({ cardNumber: CARDS.insufficientFunds })));
    expect(f).toMatchObject({ code: Code.FailedPrecondition, reason: "ERROR_REASON_PAYMENT_DECLINED", metadata: { decline_reason: "INSUFFICIENT_FUNDS" } });
    expect(effectsOf(f.metadata.order_id)).toEqual(["reserve", "release"]);
    const { order } = await h.client.getOrder({ orderId: f.metadata.order_id });
    expect(order?.failureReason).toBeTruthy();
    expect(h.payments.payments.get(order!.paymentId)?.status).toBe("DECLINED");
    await expectConsistent();
  });

  test("authorize error (payments unavailable): Unavailable with PAYMENT_FAILED, stock released", async () => {
    h.payments.faults.fail("Authorize", Infinity, Code.Unavailable);
    const f = await failureOf(h.client.createOrder(request()));
    expect(f).toMatchObject({ code: Code.Unavailable, reason: "ERROR_REASON_PAYMENT_FAILED" });
    expect(effectsOf(f.metadata.order_id)).toEqual(["reserve", "release"]);
    await expectConsistent();
  });

  test("processing error card: PAYMENT_FAILED as a business outcome", async () => {
    const f = await failureOf(h.client.createOrder(request({ cardNumber: CARDS.processingError })));
    expect(f).toMatchObject({ code: Code.FailedPrecondition, reason: "ERROR_REASON_PAYMENT_FAILED", metadata: { decline_reason: "PROCESSING_ERROR" } });
    await expectConsistent();
  });

  test("commit failure: the authorization is voided, then the stock released (reverse order)", async () => {
    h.inventory.faults.fail("CommitReservation", Infinity, Code.FailedPrecondition);
    const f = await failureOf(h.client.createOrder(request()));
    expect(f).toMatchObject({ code: Code.FailedPrecondition, reason: "ERROR_REASON_OUT_OF_STOCK" });
    expect(effectsOf(f.metadata.order_id)).toEqual(["reserve", "authorize", "void", "release"]);
    await expectConsistent();
  });

  test("capture failure: void, then the committed stock returns (reverse order)", async () => {
    h.payments.faults.fail("Capture", Infinity, Code.FailedPrecondition);
    const f = await failureOf(h.client.createOrder(request()));
    expect(f).toMatchObject({ code: Code.FailedPrecondition, reason: "ERROR_REASON_PAYMENT_FAILED" });
    expect(effectsOf(f.metadata.order_id)).toEqual(["reserve", "authorize", "commit", "void", "release"]);
    expect(h.inventory.stock.get("p-1")).toEqual({ available: 100, reserved: 0, sold: 0 });
    await expectConsistent();
  });

  test("compensation retry: ReleaseReservation failing 3 times is retried until it succeeds, once in effect", async () => {
    h.inventory.faults.fail("ReleaseReservation", 3, Code.Unavailable);
    const f = await failureOf(h.client.createOrder(request({ cardNumber: CARDS.declined })));
    expect(f.reason).toBe("ERROR_REASON_PAYMENT_DECLINED");
    expect(h.inventory.faults.calls.get("ReleaseReservation")).toBe(4);
    expect(effectsOf(f.metadata.order_id)).toEqual(["reserve", "release"]);
    expect(h.logger.lines.filter((l) => l.msg === "compensation failed; retrying")).toHaveLength(3);
    await expectConsistent();
  });

  test("a stuck compensation keeps the order PENDING and never gives up", async () => {
    h.payments.faults.fail("Void", Infinity, Code.Unavailable);
    h.inventory.faults.fail("CommitReservation", Infinity, Code.FailedPrecondition);
    const req = request();
    // Answered PENDING at the deadline: the saga cannot finish while Void fails.
    const { order } = await h.client.createOrder(req, { timeoutMs: 1_500 });
    expect(order?.status).toBe(OrderStatus.PENDING);
    await waitFor(() => (h.payments.faults.calls.get("Void") ?? 0) >= 5, { what: "several Void attempts" });
    expect((await h.client.getOrder({ orderId: order!.id })).order?.status).toBe(OrderStatus.PENDING);
    h.payments.faults.clear();
    await waitFor(async () => (await h.client.getOrder({ orderId: order!.id })).order?.status === OrderStatus.FAILED, { what: "order FAILED" });
    expect(effectsOf(order!.id)).toEqual(["reserve", "authorize", "void", "release"]);
    await expectConsistent();
  });
});

describe("idempotency", () => {
  test("the same key sequentially returns the same order; the same key with another request is ALREADY_EXISTS", async () => {
    const req = request();
    const first = await h.client.createOrder(req);
    const again = await h.client.createOrder(req);
    expect(again.order?.id).toBe(first.order?.id);
    expect(await allOrders()).toHaveLength(1);
    const f = await failureOf(h.client.createOrder({ ...req, items: [{ productId: "p-2", quantity: 3 }] }));
    expect(f).toMatchObject({ code: Code.AlreadyExists, reason: "ERROR_REASON_IDEMPOTENCY_KEY_REUSED" });
    // Another customer may use the same key.
    const other = await h.client.createOrder({ ...req, customerId: "c-2" });
    expect(other.order?.id).not.toBe(first.order?.id);
  });

  test("10 concurrent CreateOrders with one key create one order, one reservation, one payment", async () => {
    h.payments.faults.delay("Authorize", 200);
    const req = request();
    const answers = await Promise.all(Array.from({ length: 10 }, () => h.client.createOrder(req)));
    expect(new Set(answers.map((a) => a.order?.id)).size).toBe(1);
    expect(answers.every((a) => a.order?.status === OrderStatus.CONFIRMED)).toBe(true);
    expect(await allOrders()).toHaveLength(1);
    expect(h.inventory.reservations.size).toBe(1);
    expect(h.payments.payments.size).toBe(1);
    await expectConsistent();
  });

  test("a failed checkout retried with the same key answers the same error and order", async () => {
    const req = request({ cardNumber: CARDS.declined });
    const a = await failureOf(h.client.createOrder(req));
    const b = await failureOf(h.client.createOrder(req));
    expect(b).toEqual(a);
    expect(h.payments.faults.calls.get("Authorize")).toBe(1);
  });
});

describe("validation and status codes", () => {
  test.each([
    ["missing idempotency key", { idempotencyKey: "" }, ""],
    ["missing customer", { customerId: "" }, ""],
    ["bad currency", { currencyCode: "eur" }, ""],
    ["card failing Luhn", { cardNumber: "4242424242424241" }, ""],
    ["no items", { items: [] }, "ERROR_REASON_INVALID_ITEMS"],
    ["quantity 0", { items: [{ productId: "p-1", quantity: 0 }] }, "ERROR_REASON_INVALID_ITEMS"],
    ["repeated product", { items: [{ productId: "p-1", quantity: 1 }, { productId: "p-1", quantity: 2 }] }, "ERROR_REASON_INVALID_ITEMS"],
  ])("CreateOrder with %s is INVALID_ARGUMENT", async (_name, over, reason) => {
    const f = await failureOf(h.client.createOrder(request(over as Partial<CreateInit>)));
    expect(f.code).toBe(Code.InvalidArgument);
    expect(f.reason).toBe(reason);
    expect(await allOrders()).toEqual([]);
  });

  test("GetOrder, CancelOrder and WatchOrder of an unknown id are NOT_FOUND", async () => {
    for (const call of [
      h.client.getOrder({ orderId: "nope" }),
      h.client.cancelOrder({ orderId: "nope" }),
      (async () => {
        for await (const _ of h.client.watchOrder({ orderId: "nope" })) void _;
      })(),
    ]) {
      expect(await failureOf(call)).toMatchObject({ code: Code.NotFound, reason: "ERROR_REASON_ORDER_NOT_FOUND" });
    }
  });

  test("ListOrders pages newest first; bad, foreign and negative page arguments are INVALID_ARGUMENT", async () => {
    const ids: string[] = [];
    for (let i = 0; i < 5; i++) ids.push((await h.client.createOrder(request({ items: [{ productId: "p-2", quantity: 1 }] }))).order!.id);
    await h.client.createOrder(request({ customerId: "c-2" }));
    const seen: string[] = [];
    let token = "";
    let pages = 0;
    do {
      const page = await h.client.listOrders({ customerId: "c-1", pageSize: 2, pageToken: token });
      seen.push(...page.orders.map((o) => o.id));
      token = page.nextPageToken;
      pages++;
    } while (token);
    expect(pages).toBe(3);
    expect(seen).toEqual([...ids].reverse());
    const firstPage = await h.client.listOrders({ customerId: "c-1", pageSize: 2 });
    expect(await failureOf(h.client.listOrders({ customerId: "c-2", pageToken: firstPage.nextPageToken }))).toMatchObject({
      code: Code.InvalidArgument,
      reason: "ERROR_REASON_INVALID_PAGE_TOKEN",
    });
    expect(await failureOf(h.client.listOrders({ customerId: "c-1", pageToken: "%%%" }))).toMatchObject({ code: Code.InvalidArgument, reason: "ERROR_REASON_INVALID_PAGE_TOKEN" });
    expect((await failureOf(h.client.listOrders({ customerId: "c-1", pageSize: -1 }))).code).toBe(Code.InvalidArgument);
  });
});

describe("cancellation", () => {
  test("CONFIRMED → CANCELLED refunds and returns the stock; repeats are unchanged", async () => {
    const { order } = await h.client.createOrder(request());
    const { order: cancelled } = await h.client.cancelOrder({ orderId: order!.id, reason: "changed my mind" });
    expect(cancelled?.status).toBe(OrderStatus.CANCELLED);
    expect(cancelled?.cancelReason).toBe("changed my mind");
    expect(h.payments.payments.get(order!.paymentId)?.status).toBe("REFUNDED");
    expect(effectsOf(order!.id)).toEqual(["reserve", "authorize", "commit", "capture", "refund", "release"]);
    const again = await h.client.cancelOrder({ orderId: order!.id });
    expect(again.order?.updateTime).toEqual(cancelled?.updateTime);
    expect(await outboxTypes(h.database, order!.id)).toEqual(["orders.v1.OrderPlaced", "orders.v1.OrderConfirmed", "orders.v1.OrderCancelled"]);
    await expectConsistent();
  });

  test("SHIPPED and FAILED orders are not cancellable", async () => {
    const { order } = await h.client.createOrder(request());
    await h.orders.service.markShipped(order!.id);
    expect(await failureOf(h.client.cancelOrder({ orderId: order!.id }))).toMatchObject({
      code: Code.FailedPrecondition,
      reason: "ERROR_REASON_ORDER_NOT_CANCELLABLE",
      metadata: { status: "SHIPPED" },
    });
    const failed = await failureOf(h.client.createOrder(request({ cardNumber: CARDS.declined })));
    expect(await failureOf(h.client.cancelOrder({ orderId: failed.metadata.order_id }))).toMatchObject({
      code: Code.FailedPrecondition,
      reason: "ERROR_REASON_ORDER_NOT_CANCELLABLE",
    });
  });

  test("cancelling a PENDING order stops checkout and undoes what was done", async () => {
    h.payments.faults.delay("Authorize", 700);
    const { order } = await h.client.createOrder(request(), { timeoutMs: 1_200 });
    expect(order?.status).toBe(OrderStatus.PENDING);
    const { order: cancelled } = await h.client.cancelOrder({ orderId: order!.id, reason: "too slow" });
    expect(cancelled?.status).toBe(OrderStatus.CANCELLED);
    expect(effectsOf(order!.id)).toEqual(["reserve", "authorize", "void", "release"]);
    expect(await outboxTypes(h.database, order!.id)).toEqual(["orders.v1.OrderPlaced", "orders.v1.OrderCancelled"]);
    await expectConsistent();
  });
});

describe("WatchOrder", () => {
  test("streams PENDING, CONFIRMED, then CANCELLED and ends", async () => {
    h.payments.faults.delay("Authorize", 500);
    const { order } = await h.client.createOrder(request(), { timeoutMs: 1_100 });
    expect(order?.status).toBe(OrderStatus.PENDING);
    const statuses: OrderStatus[] = [];
    const watching = (async () => {
      for await (const m of h.client.watchOrder({ orderId: order!.id })) {
        if (statuses[statuses.length - 1] !== m.order!.status) statuses.push(m.order!.status);
        if (m.order!.status === OrderStatus.CONFIRMED) void h.client.cancelOrder({ orderId: order!.id });
      }
    })();
    await watching;
    expect(statuses).toEqual([OrderStatus.PENDING, OrderStatus.CONFIRMED, OrderStatus.CANCELLED]);
  });
});
