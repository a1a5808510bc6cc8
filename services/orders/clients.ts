import type { Client } from "@connectrpc/connect";
import { Code, ConnectError } from "@connectrpc/connect";
import type { CatalogService } from "../../gen/catalog/v1/catalog_pb.js";
import type { InventoryService } from "../../gen/inventory/v1/inventory_pb.js";
import { ErrorDetailSchema } from "../../gen/meshwork/v1/errors_pb.js";
import { DeclineReason, PaymentStatus, type Payment, type PaymentService } from "../../gen/payments/v1/payments_pb.js";
import { minorOf, money } from "./convert.js";
import { RemoteError, type CheckoutPorts, type PaymentInfo, type PaymentStatus as DomainPaymentStatus } from "./domain/ports.js";

/** Typed clients of the services checkout calls. */
export interface CheckoutClients {
  catalog: Client<typeof CatalogService>;
  inventory: Client<typeof InventoryService>;
  payments: Client<typeof PaymentService>;
}

// Codes that say "try again": the request may not have been evaluated, or the server was
// overloaded or failed internally. Every checkout call is idempotent, so repeating is safe.
const TRANSIENT = new Set<Code>([Code.Unavailable, Code.DeadlineExceeded, Code.Aborted, Code.ResourceExhausted, Code.Internal, Code.Unknown, Code.Canceled]);

/** Checkout's remote operations over the catalog, inventory and payments contracts. */
export function checkoutPorts(clients: CheckoutClients): CheckoutPorts {
  const { catalog, inventory, payments } = clients;
  return {
    async getProduct(productId, timeoutMs) {
      try {
        const { product } = await catalog.getProduct({ id: productId }, { timeoutMs });
        if (!product) throw new RemoteError(`catalog returned no product for ${productId}`, "Internal", true, "", {});
        const priceMinor = product.price ? minorOf(product.price) : undefined;
        if (priceMinor === undefined) throw new RemoteError(`catalog price of ${productId} is missing or out of range`, "Internal", false, "", {});
        return { id: product.id, name: product.name, currency: product.price?.currencyCode ?? "", priceMinor, active: product.active };
      } catch (err) {
        const e = toRemote(err);
        if (e.code === "NotFound") return undefined;
        throw e;
      }
    },
    async reserve(req, timeoutMs) {
      await call(() => inventory.reserve({ reservationId: req.reservationId, orderId: req.orderId, items: req.items }, { timeoutMs }));
    },
    async commitReservation(reservationId, timeoutMs) {
      await call(() => inventory.commitReservation({ reservationId }, { timeoutMs }));
    },
    async releaseReservation(reservationId, reason, timeoutMs) {
      try {
        await inventory.releaseReservation({ reservationId, reason }, { timeoutMs });
        return "released";
      } catch (err) {
        const e = toRemote(err);
        if (e.code === "NotFound") return "not_found";
        throw e;
      }
    },
    async authorize(req, timeoutMs) {
      const r = await call(() =>
        payments.authorize(
          { idempotencyKey: req.idempotencyKey, orderId: req.orderId, customerId: req.customerId, amount: money(req.currency, req.amountMinor), cardNumber: req.cardNumber },
          { timeoutMs },
        ),
      );
      return paymentInfo(r.payment);
    },
    async capture(idempotencyKey, paymentId, timeoutMs) {
      return paymentInfo((await call(() => payments.capture({ idempotencyKey, paymentId }, { timeoutMs }))).payment);
    },
    async void(idempotencyKey, paymentId, timeoutMs) {
      return paymentInfo((await call(() => payments.void({ idempotencyKey, paymentId }, { timeoutMs }))).payment);
    },
    async refund(idempotencyKey, paymentId, reason, timeoutMs) {
      return paymentInfo((await call(() => payments.refund({ idempotencyKey, paymentId, reason }, { timeoutMs }))).payment);
    },
    async getPayment(paymentId, timeoutMs) {
      try {
        return paymentInfo((await payments.getPayment({ paymentId }, { timeoutMs })).payment);
      } catch (err) {
        const e = toRemote(err);
        if (e.code === "NotFound") return undefined;
        throw e;
      }
    },
  };
}

async function call<T>(fn: () => Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (err) {
    throw toRemote(err);
  }
}

function paymentInfo(p: Payment | undefined): PaymentInfo {
  if (!p) throw new RemoteError("payments returned no payment", "Internal", true, "", {});
  return {
    id: p.id,
    status: (PaymentStatus[p.status] ?? "UNSPECIFIED") as DomainPaymentStatus,
    declineReason: p.declineReason === DeclineReason.UNSPECIFIED ? "" : (DeclineReason[p.declineReason] ?? ""),
  };
}

/** A ConnectError (with its meshwork.v1.ErrorDetail, if any) as a domain RemoteError. */
export function toRemote(err: unknown): RemoteError {
  if (err instanceof RemoteError) return err;
  const ce = ConnectError.from(err);
  const detail = ce.findDetails(ErrorDetailSchema)[0];
  return new RemoteError(ce.rawMessage, Code[ce.code], TRANSIENT.has(ce.code), detail?.reason ?? "", { ...(detail?.metadata ?? {}) });
}
