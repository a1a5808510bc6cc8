import { Code, createClient, type Client } from "@connectrpc/connect";
import type { Etcd3 } from "etcd3";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { CatalogService } from "../../gen/catalog/v1/catalog_pb.js";
import { InventoryService } from "../../gen/inventory/v1/inventory_pb.js";
import { NotificationKind, NotificationService } from "../../gen/notifications/v1/notifications_pb.js";
import { OrderService, OrderStatus } from "../../gen/orders/v1/orders_pb.js";
import { PaymentService, PaymentStatus } from "../../gen/payments/v1/payments_pb.js";
import { createMeshTransport, staticEndpoints, type MeshTransport } from "../../mesh/client/index.js";
import { createEtcdClient } from "../../mesh/etcd/client.js";
import { startEtcd, startNats, waitFor, type EtcdServer, type ManagedProcess, type NatsServer } from "../../mesh/infra/index.js";
import { failureOf } from "./testing/assertions.js";
import { CARDS } from "./testing/fakes.js";
import { spawnService } from "./testing/processes.js";

// The whole checkout across real processes: catalog, inventory, payments, orders and notifications
// main.ts against a real etcd and NATS, each with its own SQLite file.
let etcd: EtcdServer;
let nats: NatsServer;
let etcdClient: Etcd3;
let dataDir: string;
const procs: ManagedProcess[] = [];
const transports: MeshTransport[] = [];
let catalog: Client<typeof CatalogService>;
let inventory: Client<typeof InventoryService>;
let payments: Client<typeof PaymentService>;
let orders: Client<typeof OrderService>;
let notifications: Client<typeof NotificationService>;

function client<S extends Parameters<typeof createClient>[0]>(desc: S, address: string): Client<S> {
  const t = createMeshTransport({ endpoints: staticEndpoints(address) });
  transports.push(t);
  return createClient(desc, t) as Client<S>;
}

beforeAll(async () => {
  [etcd, nats] = await Promise.all([startEtcd(), startNats()]);
  etcdClient = createEtcdClient(etcd.endpoint);
  dataDir = mkdtempSync(path.join(tmpdir(), "meshwork-e2e-"));
  const env = { ETCD_ENDPOINTS: etcd.endpoint, NATS_URL: nats.url, MESHWORK_DATA_DIR: dataDir };
  const main = (name: string) => path.join(__dirname, "..", name, "main.ts");
  const started = await Promise.all(["catalog", "inventory", "payments", "orders", "notifications"].map((name) => spawnService(etcdClient, name, main(name), env)));
  procs.push(...started.map((s) => s.proc));
  catalog = client(CatalogService, started[0].address);
  inventory = client(InventoryService, started[1].address);
  payments = client(PaymentService, started[2].address);
  orders = client(OrderService, started[3].address);
  notifications = client(NotificationService, started[4].address);
  // etcd, NATS and five cold process starts: above the 60 s default on a loaded 2-core machine.
}, 120_000);

afterAll(async () => {
  for (const t of transports) t.close();
  await Promise.all(procs.map((p) => p.kill()));
  etcdClient?.close();
  await Promise.all([etcd?.stop(), nats?.stop()]);
  if (dataDir) rmSync(dataDir, { recursive: true, force: true });
});

const available = async (productId: string) => (await inventory.getStock({ productId })).stock!.available;

test("checkout end to end: confirm, fail on stock and card, cancel with refund, notifications for each", async () => {
  const customerId = "c-e2e";
  const { product } = await catalog.getProduct({ id: "prod-001" });
  const before = await available("prod-001");

  const { order } = await orders.createOrder({
    idempotencyKey: "e2e-1",
    customerId,
    currencyCode: "EUR",
    cardNumber: CARDS.ok,
    items: [{ productId: "prod-001", quantity: 2, expectedUnitPrice: product!.price }],
  });
  expect(order?.status).toBe(OrderStatus.CONFIRMED);
  expect(order?.total?.amountMinor).toBe(product!.price!.amountMinor * 2n);
  expect(await available("prod-001")).toBe(before - 2);
  expect((await payments.getPayment({ paymentId: order!.paymentId })).payment?.status).toBe(PaymentStatus.CAPTURED);

  // prod-020 has one unit: OUT_OF_STOCK with what is available.
  const noStock = await failureOf(orders.createOrder({ idempotencyKey: "e2e-2", customerId, currencyCode: "EUR", cardNumber: CARDS.ok, items: [{ productId: "prod-020", quantity: 5 }] }));
  expect(noStock).toMatchObject({ code: Code.FailedPrecondition, reason: "ERROR_REASON_OUT_OF_STOCK", metadata: { product_id: "prod-020", available: "1" } });

  const declined = await failureOf(
    orders.createOrder({ idempotencyKey: "e2e-3", customerId, currencyCode: "EUR", cardNumber: CARDS.declined, items: [{ productId: "prod-001", quantity: 1 }] }),
  );
  expect(declined).toMatchObject({ code: Code.FailedPrecondition, reason: "ERROR_REASON_PAYMENT_DECLINED" });
  expect(await available("prod-001")).toBe(before - 2);

  const { order: cancelled } = await orders.cancelOrder({ orderId: order!.id, reason: "e2e" });
  expect(cancelled?.status).toBe(OrderStatus.CANCELLED);
  expect(await available("prod-001")).toBe(before);
  expect((await payments.getPayment({ paymentId: order!.paymentId })).payment?.status).toBe(PaymentStatus.REFUNDED);

  const kinds = await waitFor(
    async () => {
      const list = (await notifications.listNotifications({ customerId, pageSize: 100 })).notifications.map((n) => NotificationKind[n.kind]).sort();
      return list.length >= 8 ? list : undefined;
    },
    { timeoutMs: 15_000, what: "notifications of every event" },
  );
  expect(kinds).toEqual(["ORDER_CANCELLED", "ORDER_CONFIRMED", "ORDER_FAILED", "ORDER_FAILED", "ORDER_PLACED", "ORDER_PLACED", "ORDER_PLACED", "PAYMENT_REFUNDED"].sort());

  for (const p of procs) p.proc.kill("SIGTERM");
  expect(await Promise.all(procs.map((p) => p.exited))).toEqual(procs.map(() => ({ code: 0, signal: null })));
});
