import { PaymentService } from "../../gen/payments/v1/payments_pb.js";
import { createMeshServer, service, type MeshServer } from "../../mesh/server/index.js";
import type { Payments } from "./domain/payments.js";
import { routes } from "./routes.js";

/** What the payments server needs. */
export interface PaymentsDeps {
  payments: Payments;
}

/** Builds the payments service's gRPC server, unstarted. */
export function build(deps: PaymentsDeps): MeshServer {
  return createMeshServer({
    serviceName: "payments",
    services: [service(PaymentService, routes(deps.payments))],
  });
}
