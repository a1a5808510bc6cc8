/** What a notification is about (notifications.v1.NotificationKind without the prefix). */
export type NotificationKind = "ORDER_PLACED" | "ORDER_CONFIRMED" | "ORDER_FAILED" | "ORDER_CANCELLED" | "PAYMENT_REFUNDED";

/** One message to a customer. */
export interface Notification {
  id: string;
  customerId: string;
  kind: NotificationKind;
  title: string;
  body: string;
  /** Empty when the notification is not about an order. */
  orderId: string;
  /** Id of the event it was made from; at most one notification per event. */
  sourceEventId: string;
  /** Epoch ms. */
  createdAt: number;
}

/** An amount in integer minor units. */
export interface Amount {
  currency: string;
  minor: number;
}

/** A domain event a customer hears about, as facts (the transport adapter decodes the payloads). */
export type CustomerEvent =
  | { kind: "ORDER_PLACED"; orderId: string; customerId: string; total: Amount; itemCount: number }
  | { kind: "ORDER_CONFIRMED"; orderId: string; customerId: string; total: Amount }
  | { kind: "ORDER_FAILED"; orderId: string; customerId: string; reason: string }
  | { kind: "ORDER_CANCELLED"; orderId: string; customerId: string; total: Amount; wasPaid: boolean }
  | { kind: "PAYMENT_REFUNDED"; orderId: string; customerId: string; amount: Amount };

/** Writes the title and body of the notification for `event`. */
export function compose(event: CustomerEvent): { title: string; body: string } {
  switch (event.kind) {
    case "ORDER_PLACED":
      return { title: "Order received", body: `We received your order of ${event.itemCount} item${event.itemCount === 1 ? "" : "s"} for ${formatAmount(event.total)}.` };
    case "ORDER_CONFIRMED":
      return { title: "Order confirmed", body: `We received your payment of ${formatAmount(event.total)}.` };
    case "ORDER_FAILED":
      return { title: "Order not completed", body: `${FAILURE_TEXT[event.reason] ?? "We could not complete your order."} Nothing was charged.` };
    case "ORDER_CANCELLED":
      return {
        title: "Order cancelled",
        body: event.wasPaid ? `Your order was cancelled; ${formatAmount(event.total)} will be refunded.` : "Your order was cancelled. Nothing was charged.",
      };
    case "PAYMENT_REFUNDED":
      return { title: "Refund issued", body: `We refunded ${formatAmount(event.amount)} to your card.` };
  }
}

const FAILURE_TEXT: Record<string, string> = {
  OUT_OF_STOCK: "An item of your order is out of stock.",
  PAYMENT_DECLINED: "Your card was declined.",
  PAYMENT_FAILED: "Your payment could not be processed.",
  PRICE_CHANGED: "A price changed while you were ordering.",
  PRODUCT_NOT_FOUND: "An item of your order is not sold here.",
  PRODUCT_INACTIVE: "An item of your order is no longer sold.",
  CURRENCY_MISMATCH: "An item is not sold in your currency.",
};

/** "19.99 EUR" from 1999 minor units: the currency's own number of decimals (0 for JPY). */
export function formatAmount(amount: Amount): string {
  let digits = 2;
  try {
    digits = new Intl.NumberFormat("en", { style: "currency", currency: amount.currency }).resolvedOptions().maximumFractionDigits ?? 2;
  } catch {
    // Not an ISO 4217 code Intl knows: two decimals, the common case.
  }
  return `${(amount.minor / 10 ** digits).toFixed(digits)} ${amount.currency}`;
}
