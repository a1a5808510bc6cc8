import { OrderService } from "../../gen/orders/v1/orders_pb.js";
import type { Database } from "../../mesh/db/index.js";
import { createMeshServer, service, type MeshServer } from "../../mesh/server/index.js";
import { meshMetrics, recordEvent } from "../../mesh/telemetry/index.js";
import { traceDetached } from "../../mesh/telemetry/messaging.js";
import { checkoutPorts, type CheckoutClients } from "./clients.js";
import { SqlOrderRepository } from "./data/order-repository.js";
import { OrderChanges } from "./domain/changes.js";
import { CheckoutSaga, type SagaLogger, type SagaTiming } from "./domain/checkout-saga.js";
import { OrdersService } from "./domain/orders.js";
import { routes } from "./routes.js";

/** What orders needs: its migrated database, clients of the services checkout calls, and who it is. */
export interface OrdersDeps {
  database: Database;
  clients: CheckoutClients;
  /** Unique per process; owns the sagas this process drives. */
  instanceId: string;
  logger: SagaLogger;
  timing?: Partial<SagaTiming>;
  /** Called after events were committed to the outbox (pass `relay.kick`). */
  onEventsCommitted?: () => void;
}

/** The orders components: the use cases for the routes and the saga, whose background work the caller starts and stops. */
export interface Orders {
  service: OrdersService;
  saga: CheckoutSaga;
  repo: SqlOrderRepository;
}

/** Wires the orders components; nothing runs until `saga.start()` and the server listens. */
export function createOrders(deps: OrdersDeps): Orders {
  const repo = new SqlOrderRepository(deps.database, { onEventsCommitted: deps.onEventsCommitted });
  const changes = new OrderChanges();
  const saga = new CheckoutSaga({
    repo,
    ports: checkoutPorts(deps.clients),
    changes,
    owner: deps.instanceId,
    logger: deps.logger,
    timing: deps.timing,
    // Detached drives continue the trace of the CreateOrder call that placed the order.
    driveScope: (order, drive) => traceDetached("orders checkout saga", { traceparent: order.traceparent }, drive, { "meshwork.order_id": order.id }),
    onOutcome: (outcome) => {
      meshMetrics.sagaOutcome(outcome.toLowerCase());
      recordEvent("saga_finished", { "meshwork.saga.outcome": outcome.toLowerCase() });
    },
  });
  return { service: new OrdersService(repo, saga, changes), saga, repo };
}

/** Builds the orders gRPC server, unstarted. */
export function build(orders: Orders): MeshServer {
  return createMeshServer({
    serviceName: "orders",
    services: [service(OrderService, routes(orders.service))],
  });
}
