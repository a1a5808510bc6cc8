import { Code, ConnectError } from "@connectrpc/connect";
import { OrderPlacedSchema } from "../../gen/orders/v1/events_pb.js";
import { backoffDelay } from "./backoff.js";
import { domainOf, subjectFor } from "./subjects.js";

test("subjectFor derives <domain>.<snake_case name> from the payload type", () => {
  expect(subjectFor(OrderPlacedSchema)).toBe("orders.order_placed");
  expect(subjectFor("payments.v1.PaymentCaptured")).toBe("payments.payment_captured");
  expect(subjectFor("inventory.v1.SKUReservationExpired")).toBe("inventory.sku_reservation_expired");
  expect(domainOf(subjectFor(OrderPlacedSchema))).toBe("orders");
});

test("subjectFor rejects a type without a package", () => {
  for (const bad of ["OrderPlaced", ".x", "orders."]) {
    let err: unknown;
    try {
      subjectFor(bad);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(ConnectError);
    expect((err as ConnectError).code).toBe(Code.InvalidArgument);
  }
});

test("backoffDelay doubles from initialMs, caps at maxMs, and keeps at least half", () => {
  const opts = { initialMs: 100, maxMs: 1_000 };
  for (let i = 0; i < 50; i++) {
    const first = backoffDelay(1, opts);
    expect(first).toBeGreaterThanOrEqual(50);
    expect(first).toBeLessThanOrEqual(100);
    const third = backoffDelay(3, opts);
    expect(third).toBeGreaterThanOrEqual(200);
    expect(third).toBeLessThanOrEqual(400);
    const capped = backoffDelay(30, opts);
    expect(capped).toBeGreaterThanOrEqual(500);
    expect(capped).toBeLessThanOrEqual(1_000);
  }
});
