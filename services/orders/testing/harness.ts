// Test support (not a test file): orders served on a real gRPC server against fake catalog,
// inventory and payments on real gRPC servers, with a scratch database of either dialect.
import { createClient, type Client } from "@connectrpc/connect";
import { randomUUID } from "node:crypto";
import { CatalogService } from "../../../gen/catalog/v1/catalog_pb.js";
import { InventoryService } from "../../../gen/inventory/v1/inventory_pb.js";
import { OrderService } from "../../../gen/orders/v1/orders_pb.js";
import { PaymentService } from "../../../gen/payments/v1/payments_pb.js";
import { createMeshTransport, staticEndpoints, type MeshTransport } from "../../../mesh/client/index.js";
import { openDatabase, type Database, type Dialect } from "../../../mesh/db/index.js";
import { createScratchDatabase } from "../../../mesh/db/testing.js";
import type { MeshServer } from "../../../mesh/server/index.js";
import { startTestGrpcServer } from "../../../mesh/testing/grpc-server.js";
import { migrateOrders } from "../data/migrations.js";
import type { SagaLogger, SagaTiming } from "../domain/checkout-saga.js";
import { build, createOrders, type Orders } from "../server.js";
import { FakeCatalog, FakeInventory, FakePayments } from "./fakes.js";

/** Collects log lines so tests can assert that compensation failures were logged, not dropped. */
export class MemoryLogger implements SagaLogger {
  readonly lines: { level: string; msg: string; obj: object }[] = [];
  info(obj: object, msg: string): void {
    this.lines.push({ level: "info", msg, obj });
  }
  warn(obj: object, msg: string): void {
    this.lines.push({ level: "warn", msg, obj });
  }
  error(obj: object, msg: string): void {
    this.lines.push({ level: "error", msg, obj });
  }
}

/** Fast saga timing for tests: short backoffs so injected failures resolve in milliseconds. */
export const FAST_TIMING: Partial<SagaTiming> = {
  leaseMs: 2_000,
  sweepIntervalMs: 200,
  catalogTimeoutMs: 1_000,
  callTimeoutMs: 2_000,
  forwardBackoff: { initialMs: 10, maxMs: 50 },
  compensationBackoff: { initialMs: 10, maxMs: 100 },
};

/** A running orders server with its fakes; `close()` stops and removes everything. */
export interface OrdersHarness {
  catalog: FakeCatalog;
  inventory: FakeInventory;
  payments: FakePayments;
  database: Database;
  orders: Orders;
  client: Client<typeof OrderService>;
  logger: MemoryLogger;
  /** Units per product at the start, for the invariants. */
  initialStock: Map<string, number>;
  close(): Promise<void>;
}

/** Products p-1 (EUR 19.99, 100 units), p-2 (EUR 5.00, 100 units), p-3 (EUR 1.00, 2 units) and inactive p-old. */
export async function startOrdersHarness(opts: { dialect?: Dialect; timing?: Partial<SagaTiming> } = {}): Promise<OrdersHarness> {
  const catalog = new FakeCatalog();
  catalog.products.set("p-1", { name: "Teapot", currency: "EUR", priceMinor: 1999, active: true });
  catalog.products.set("p-2", { name: "Mug", currency: "EUR", priceMinor: 500, active: true });
  catalog.products.set("p-3", { name: "Spoon", currency: "EUR", priceMinor: 100, active: true });
  catalog.products.set("p-old", { name: "Old kettle", currency: "EUR", priceMinor: 900, active: false });
  catalog.products.set("p-usd", { name: "Import", currency: "USD", priceMinor: 700, active: true });
  const inventory = new FakeInventory();
  const initialStock = new Map([
    ["p-1", 100],
    ["p-2", 100],
    ["p-3", 2],
    ["p-old", 10],
    ["p-usd", 10],
  ]);
  for (const [id, units] of initialStock) inventory.setStock(id, units);
  const payments = new FakePayments();

  const closers: (() => Promise<void> | void)[] = [];
  try {
    const servers = await Promise.all([
      startTestGrpcServer(CatalogService, catalog.impl()),
      startTestGrpcServer(InventoryService, inventory.impl()),
      startTestGrpcServer(PaymentService, payments.impl()),
    ]);
    for (const s of servers) closers.push(() => s.close());
    const transports: MeshTransport[] = servers.map((s) => createMeshTransport({ endpoints: staticEndpoints(s.address) }));
    for (const t of transports) closers.push(() => t.close());

    const scratch = await createScratchDatabase(opts.dialect ?? "sqlite");
    closers.push(() => scratch.drop());
    const database = await openDatabase(scratch.url);
    closers.push(() => database.close());
    await migrateOrders(database);

    const logger = new MemoryLogger();
    const orders = createOrders({
      database,
      clients: {
        catalog: createClient(CatalogService, transports[0]),
        inventory: createClient(InventoryService, transports[1]),
        payments: createClient(PaymentService, transports[2]),
      },
      instanceId: `orders-test-${randomUUID()}`,
      logger,
      timing: { ...FAST_TIMING, ...opts.timing },
    });
    orders.saga.start();
    closers.push(() => orders.saga.stop());
    const server: MeshServer = build(orders);
    const port = await server.listen(0, "127.0.0.1");
    closers.push(() => server.forceShutdown());
    const transport = createMeshTransport({ endpoints: staticEndpoints(`127.0.0.1:${port}`) });
    closers.push(() => transport.close());
    return {
      catalog,
      inventory,
      payments,
      database,
      orders,
      client: createClient(OrderService, transport),
      logger,
      initialStock,
      close: () => closeAll(closers),
    };
  } catch (err) {
    await closeAll(closers);
    throw err;
  }
}

async function closeAll(closers: (() => Promise<void> | void)[]): Promise<void> {
  for (const c of closers.splice(0).reverse()) await c();
}
