// Test support (not a test file): the fake catalog, inventory and payments served on real gRPC
// servers and registered in etcd under their logical names, so a spawned orders process finds
// them through discovery. The fake payments publish PaymentAuthorized to NATS like the real one.
import { create, toBinary } from "@bufbuild/protobuf";
import { anyPack, timestampNow } from "@bufbuild/protobuf/wkt";
import type { Etcd3 } from "etcd3";
import type { NatsConnection } from "nats";
import { randomUUID } from "node:crypto";
import { CatalogService } from "../../../gen/catalog/v1/catalog_pb.js";
import { MoneySchema } from "../../../gen/common/v1/money_pb.js";
import { InventoryService } from "../../../gen/inventory/v1/inventory_pb.js";
import { EventEnvelopeSchema } from "../../../gen/meshwork/v1/event_pb.js";
import { PaymentAuthorizedSchema } from "../../../gen/payments/v1/events_pb.js";
import { PaymentService } from "../../../gen/payments/v1/payments_pb.js";
import { subjectFor } from "../../../mesh/events/index.js";
import { Registration } from "../../../mesh/registry/index.js";
import { startTestGrpcServer } from "../../../mesh/testing/grpc-server.js";
import { FakeCatalog, FakeInventory, FakePayments } from "./fakes.js";

/** The three fakes, registered; `close()` deregisters and stops them. */
export interface RegisteredFakes {
  catalog: FakeCatalog;
  inventory: FakeInventory;
  payments: FakePayments;
  close(): Promise<void>;
}

/** Starts the fakes and registers them in etcd; payments publishes PaymentAuthorized on `nats`. */
export async function startRegisteredFakes(etcd: Etcd3, nats: NatsConnection): Promise<RegisteredFakes> {
  const catalog = new FakeCatalog();
  const inventory = new FakeInventory();
  const payments = new FakePayments(async (p) => {
    const envelope = create(EventEnvelopeSchema, {
      id: randomUUID(),
      type: PaymentAuthorizedSchema.typeName,
      time: timestampNow(),
      producer: "payments",
      subject: p.paymentId,
      payload: anyPack(
        PaymentAuthorizedSchema,
        create(PaymentAuthorizedSchema, {
          paymentId: p.paymentId,
          orderId: p.orderId,
          customerId: p.customerId,
          amount: create(MoneySchema, { currencyCode: p.currency, amountMinor: BigInt(p.amountMinor) }),
        }),
      ),
    });
    await nats.jetstream().publish(subjectFor(PaymentAuthorizedSchema), toBinary(EventEnvelopeSchema, envelope), { msgID: envelope.id });
  });
  const servers = await Promise.all([
    startTestGrpcServer(CatalogService, catalog.impl()),
    startTestGrpcServer(InventoryService, inventory.impl()),
    startTestGrpcServer(PaymentService, payments.impl()),
  ]);
  const registrations = ["catalog", "inventory", "payments"].map(
    (service, i) =>
      new Registration(etcd, {
        service,
        instance: `${service}-fake-${randomUUID().slice(0, 8)}`,
        address: "127.0.0.1",
        port: servers[i].port,
        protocols: ["grpc"],
        version: "test",
        startedAt: new Date().toISOString(),
        metadata: {},
      }),
  );
  await Promise.all(registrations.map((r) => r.whenRegistered()));
  return {
    catalog,
    inventory,
    payments,
    async close() {
      await Promise.all(registrations.map((r) => r.deregister().catch(() => r.close())));
      for (const s of servers) s.close();
    },
  };
}
