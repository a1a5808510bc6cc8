import type { NatsConnection } from "nats";
import { PaymentAuthorizedSchema } from "../../gen/payments/v1/events_pb.js";
import type { Database } from "../../mesh/db/index.js";
import { domainStream, EventConsumer, on, type EventsLogger } from "../../mesh/events/index.js";
import { linkPaymentIn } from "./data/order-repository.js";

/** Durable consumer name of orders on the payments stream. */
export const PAYMENTS_CONSUMER = "orders-payments";

/**
 * Links every authorized payment to its order (payments.v1.PaymentAuthorized), so an authorization
 * whose Authorize answer was lost — the orchestrator died mid-call — is still voided by the saga
 * sweep. Links of payments the saga already knows are no-ops.
 */
export function paymentEventsConsumer(nats: NatsConnection, database: Database, logger?: EventsLogger): EventConsumer {
  return new EventConsumer({
    nats,
    database,
    durable: PAYMENTS_CONSUMER,
    stream: domainStream("payments").name,
    filterSubjects: ["payments.payment_authorized"],
    handlers: [on(PaymentAuthorizedSchema, (event, _envelope, trx) => linkPaymentIn(trx, event.orderId, event.paymentId))],
    // 5 s instead of JetStream's 30 s: the handler is one insert, and messages a killed process had
    // pulled but not acked come back within 5 s, so a lost authorization is voided soon after.
    ackWaitMs: 5_000,
    logger,
  });
}
