import { Code, ConnectError, createClient, type Client } from "@connectrpc/connect";
import type { Etcd3 } from "etcd3";
import { connect, type NatsConnection } from "nats";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { OrderService, OrderStatus, type Order } from "../../gen/orders/v1/orders_pb.js";
import { createMeshTransport, staticEndpoints, type MeshTransport } from "../../mesh/client/index.js";
import { createEtcdClient } from "../../mesh/etcd/client.js";
import { ensureStreams, SHOP_STREAMS } from "../../mesh/events/index.js";
import { startEtcd, startNats, waitFor, type EtcdServer, type ManagedProcess, type NatsServer } from "../../mesh/infra/index.js";
import { CARDS, invariantViolations } from "./testing/fakes.js";
import { startRegisteredFakes, type RegisteredFakes } from "./testing/mesh-fakes.js";
import { spawnService } from "./testing/processes.js";

// R7 (RELIABILITY.md): orchestrator kill -9 mid-saga under load; after a restart every saga
// completes or compensates, and stock and money balance.
const ORDERS = 30;
// Authorize takes 1 s, so at the kill many sagas are inside it (their card and answer are lost).
const AUTHORIZE_DELAY_MS = 1_000;
// Requests 50 ms apart: at the kill some sagas are done, some mid-payment, some just started.
const STAGGER_MS = 50;
const CUSTOMERS = ["c-1", "c-2", "c-3"];

let etcd: EtcdServer;
let nats: NatsServer;
let etcdClient: Etcd3;
let nc: NatsConnection;
let fakes: RegisteredFakes;
let dataDir: string;
const procs: ManagedProcess[] = [];
const transports: MeshTransport[] = [];

beforeAll(async () => {
  [etcd, nats] = await Promise.all([startEtcd(), startNats()]);
  etcdClient = createEtcdClient(etcd.endpoint);
  nc = await connect({ servers: nats.url });
  await ensureStreams(await nc.jetstreamManager(), SHOP_STREAMS);
  fakes = await startRegisteredFakes(etcdClient, nc);
  dataDir = mkdtempSync(path.join(tmpdir(), "meshwork-orders-r7-"));
});

afterAll(async () => {
  for (const t of transports) t.close();
  for (const p of procs) await p.kill();
  await fakes?.close();
  await nc?.close();
  etcdClient?.close();
  await Promise.all([etcd?.stop(), nats?.stop()]);
  rmSync(dataDir, { recursive: true, force: true });
});

/** Spawns orders/main.ts and returns a client bound to that very process. */
async function startOrders(): Promise<{ proc: ManagedProcess; client: Client<typeof OrderService> }> {
  const { proc, address } = await spawnService(etcdClient, "orders", path.join(__dirname, "main.ts"), {
    ETCD_ENDPOINTS: etcd.endpoint,
    NATS_URL: nats.url,
    MESHWORK_DATA_DIR: dataDir,
    // 2 s: the restarted process resumes the dead one's sagas 2 s after its last renewal.
    ORDERS_SAGA_LEASE_MS: "2000",
  });
  procs.push(proc);
  const transport = createMeshTransport({ endpoints: staticEndpoints(address) });
  transports.push(transport);
  return { proc, client: createClient(OrderService, transport) };
}

async function listAll(client: Client<typeof OrderService>): Promise<Order[]> {
  const all: Order[] = [];
  for (const customerId of CUSTOMERS) all.push(...(await client.listOrders({ customerId, pageSize: 100 })).orders);
  return all;
}

test("R7: kill -9 of orders mid-saga under load; after restart every saga completes or compensates and stock and money balance", async () => {
  const initialStock = new Map([["p-1", 1_000]]);
  fakes.catalog.products.set("p-1", { name: "Teapot", currency: "EUR", priceMinor: 1999, active: true });
  fakes.inventory.setStock("p-1", 1_000);
  fakes.payments.faults.delay("Authorize", AUTHORIZE_DELAY_MS);

  const first = await startOrders();
  const calls: Promise<unknown>[] = [];
  for (let i = 0; i < ORDERS; i++) {
    calls.push(
      first.client
        .createOrder(
          { idempotencyKey: `k-${i}`, customerId: CUSTOMERS[i % CUSTOMERS.length], currencyCode: "EUR", cardNumber: CARDS.ok, items: [{ productId: "p-1", quantity: 1 + (i % 3) }] },
          { timeoutMs: 10_000 },
        )
        .catch((e: unknown) => ConnectError.from(e)),
    );
    await new Promise((r) => setTimeout(r, STAGGER_MS));
  }
  // Kill once some checkouts are complete while others are still waiting for their payment.
  await waitFor(() => fakes.payments.effects.filter((e) => e.op === "capture").length >= 3, { what: "first captures", timeoutMs: 15_000 });
  await first.proc.kill();
  const answered = await Promise.all(calls);
  const lost = answered.filter((a) => a instanceof ConnectError);
  expect(lost.length).toBeGreaterThan(0);
  expect(lost.every((e) => [Code.Unavailable, Code.Aborted, Code.Canceled].includes((e as ConnectError).code))).toBe(true);

  const second = await startOrders();
  await waitFor(async () => (await listAll(second.client)).every((o) => o.status === OrderStatus.CONFIRMED || o.status === OrderStatus.FAILED), {
    timeoutMs: 20_000,
    what: "every saga finished after the restart",
  });
  const orders = await listAll(second.client);
  // Late authorizations (answered after the kill) are voided through their PaymentAuthorized events.
  await waitFor(async () => invariantViolations(await listAll(second.client), fakes.inventory, fakes.payments, initialStock).length === 0, {
    timeoutMs: 15_000,
    what: "stock and money balanced",
  }).catch(() => undefined);
  expect(invariantViolations(await listAll(second.client), fakes.inventory, fakes.payments, initialStock)).toEqual([]);

  const confirmed = orders.filter((o) => o.status === OrderStatus.CONFIRMED).length;
  const failed = orders.filter((o) => o.status === OrderStatus.FAILED).length;
  expect(orders.length).toBeGreaterThan(0);
  expect(confirmed + failed).toBe(orders.length);
  // Each effect happened at most once per order, whatever was retried or resumed.
  const effects = [...fakes.inventory.effects, ...fakes.payments.effects].map((e) => `${e.op}:${e.orderId}`);
  expect(new Set(effects).size).toBe(effects.length);
  // eslint-disable-next-line no-console
  console.log(
    `R7: ${orders.length} orders (${answered.length - lost.length} answered before the kill, ${lost.length} cut off): ` +
      `${confirmed} CONFIRMED, ${failed} FAILED; voided ${fakes.payments.effects.filter((e) => e.op === "void").length}, ` +
      `released ${fakes.inventory.effects.filter((e) => e.op === "release").length}`,
  );

  second.proc.proc.kill("SIGTERM");
  expect(await second.proc.exited).toEqual({ code: 0, signal: null });
});
