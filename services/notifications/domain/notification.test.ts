import { compose, formatAmount } from "./notification.js";

describe("notification texts", () => {
  test("amounts use the currency's own decimals", () => {
    expect(formatAmount({ currency: "EUR", minor: 1999 })).toBe("19.99 EUR");
    expect(formatAmount({ currency: "JPY", minor: 1999 })).toBe("1999 JPY");
    expect(formatAmount({ currency: "EUR", minor: 5 })).toBe("0.05 EUR");
  });

  test("each kind has a title and a body with the facts", () => {
    const total = { currency: "EUR", minor: 1999 };
    expect(compose({ kind: "ORDER_CONFIRMED", orderId: "o", customerId: "c", total })).toEqual({
      title: "Order confirmed",
      body: "We received your payment of 19.99 EUR.",
    });
    expect(compose({ kind: "ORDER_PLACED", orderId: "o", customerId: "c", total, itemCount: 1 }).body).toBe("We received your order of 1 item for 19.99 EUR.");
    expect(compose({ kind: "ORDER_FAILED", orderId: "o", customerId: "c", reason: "PAYMENT_DECLINED" }).body).toBe("Your card was declined. Nothing was charged.");
    expect(compose({ kind: "ORDER_FAILED", orderId: "o", customerId: "c", reason: "SOMETHING_NEW" }).body).toBe("We could not complete your order. Nothing was charged.");
    expect(compose({ kind: "ORDER_CANCELLED", orderId: "o", customerId: "c", total, wasPaid: true }).body).toBe("Your order was cancelled; 19.99 EUR will be refunded.");
    expect(compose({ kind: "ORDER_CANCELLED", orderId: "o", customerId: "c", total, wasPaid: false }).body).toBe("Your order was cancelled. Nothing was charged.");
    expect(compose({ kind: "PAYMENT_REFUNDED", orderId: "o", customerId: "c", amount: total })).toEqual({ title: "Refund issued", body: "We refunded 19.99 EUR to your card." });
  });
});
