import { createClient } from "@connectrpc/connect";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { CatalogService } from "../../gen/catalog/v1/catalog_pb.js";
import { createMeshTransport, staticEndpoints } from "../../mesh/client/index.js";
import { createEtcdClient } from "../../mesh/etcd/client.js";
import { waitForRegistration } from "../../mesh/testing/registration.js";
import { startEtcd, startProcess, tsxArgs, type EtcdServer, type ManagedProcess } from "../../mesh/infra/index.js";
import { servicePrefix } from "../../mesh/registry/index.js";

describe("catalog main.ts", () => {
  let etcd: EtcdServer;
  let proc: ManagedProcess | undefined;
  let dataDir: string;

  beforeAll(async () => {
    etcd = await startEtcd();
    dataDir = mkdtempSync(path.join(tmpdir(), "meshwork-catalog-main-"));
  });
  afterAll(async () => {
    await proc?.kill();
    await etcd?.stop();
    rmSync(dataDir, { recursive: true, force: true });
  });

  it("registers in etcd, answers calls and exits 0 on SIGTERM", async () => {
    proc = startProcess(process.execPath, tsxArgs(path.join(__dirname, "main.ts")), {
      env: { ...process.env, MESHWORK_PORT: "0", ETCD_ENDPOINTS: etcd.endpoint, MESHWORK_DATA_DIR: dataDir, NATS_URL: "" },
    });
    const etcdClient = createEtcdClient(etcd.endpoint);
    try {
      const instance = await waitForRegistration(etcdClient, "catalog", proc);
      const transport = createMeshTransport({ endpoints: staticEndpoints(`${instance.address}:${instance.port}`) });
      try {
        const { product } = await createClient(CatalogService, transport).getProduct({ id: "prod-001" });
        expect(product?.sku).toBe("KIT-001");
      } finally {
        transport.close();
      }
      proc.proc.kill("SIGTERM");
      expect(await proc.exited).toEqual({ code: 0, signal: null });
      expect(await etcdClient.getAll().prefix(servicePrefix("catalog")).keys()).toEqual([]);
    } finally {
      etcdClient.close();
    }
  });
});
