import { createClient } from "@connectrpc/connect";
import { connect } from "nats";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { PaymentService } from "../../gen/payments/v1/payments_pb.js";
import { TEST_CARDS } from "./domain/processor.js";
import { createMeshTransport, staticEndpoints } from "../../mesh/client/index.js";
import { createEtcdClient } from "../../mesh/etcd/client.js";
import { waitForRegistration } from "../../mesh/testing/registration.js";
import { startEtcd, startNats, startProcess, tsxArgs, waitFor, type EtcdServer, type ManagedProcess, type NatsServer } from "../../mesh/infra/index.js";
import { servicePrefix } from "../../mesh/registry/index.js";

describe("payments main.ts", () => {
  let etcd: EtcdServer;
  let nats: NatsServer;
  let proc: ManagedProcess | undefined;
  let dataDir: string;

  beforeAll(async () => {
    [etcd, nats] = await Promise.all([startEtcd(), startNats()]);
    dataDir = mkdtempSync(path.join(tmpdir(), "meshwork-payments-main-"));
  });
  afterAll(async () => {
    await proc?.kill();
    await Promise.all([etcd?.stop(), nats?.stop()]);
    rmSync(dataDir, { recursive: true, force: true });
  });

  it("registers in etcd, answers calls, publishes its events and exits 0 on SIGTERM", async () => {
    proc = startProcess(process.execPath, tsxArgs(path.join(__dirname, "main.ts")), {
      env: { ...process.env, MESHWORK_PORT: "0", ETCD_ENDPOINTS: etcd.endpoint, NATS_URL: nats.url, MESHWORK_DATA_DIR: dataDir },
    });
    const etcdClient = createEtcdClient(etcd.endpoint);
    const nc = await connect({ servers: nats.url });
    try {
      const instance = await waitForRegistration(etcdClient, "payments", proc);
      const transport = createMeshTransport({ endpoints: staticEndpoints(`${instance.address}:${instance.port}`) });
      try {
        const client = createClient(PaymentService, transport);
        const { payment } = await client.authorize({
          idempotencyKey: "main-1",
          orderId: "o-1",
          customerId: "c-1",
          amount: { currencyCode: "EUR", amountMinor: 1_999n },
          cardNumber: TEST_CARDS.APPROVED,
        });
        expect((await client.getPayment({ paymentId: payment!.id })).payment?.status).toBe(payment?.status);
      } finally {
        transport.close();
      }
      // The relay created the PAYMENTS stream and published PaymentAuthorized to it.
      const jsm = await nc.jetstreamManager();
      await waitFor(async () => (await jsm.streams.info("PAYMENTS").catch(() => undefined))?.state.messages === 1, {
        timeoutMs: 10_000,
        what: "PaymentAuthorized on the PAYMENTS stream",
      });
      proc.proc.kill("SIGTERM");
      expect(await proc.exited).toEqual({ code: 0, signal: null });
      expect(await etcdClient.getAll().prefix(servicePrefix("payments")).keys()).toEqual([]);
    } finally {
      etcdClient.close();
      await nc.close();
    }
  });
});
