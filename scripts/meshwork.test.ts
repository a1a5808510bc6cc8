import { connect, headers as natsHeaders, type NatsConnection } from "nats";
import { execFile } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { jose } from "../mesh/auth/jose.js";
import { createEtcdClient } from "../mesh/etcd/client.js";
import { ensureStreams, Headers, SHOP_STREAMS } from "../mesh/events/index.js";
import { startEtcd, startNats, startProcess, tsxArgs, waitFor, type EtcdServer, type ManagedProcess, type NatsServer } from "../mesh/infra/index.js";
import { loadOrCreateDevSecrets } from "./local-mesh/dev-secrets.js";
import { registeredInstances } from "./local-mesh/instances.js";

const root = resolve(__dirname, "..");
const SECRET = "cli-test-secret-that-is-at-least-32-bytes-long";

/** Runs the `meshwork` bin (the same shim npm links) and collects its exit code and output. */
function meshwork(args: string[], env: NodeJS.ProcessEnv = {}): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolvePromise) => {
    execFile(process.execPath, [join(root, "scripts/meshwork-bin.js"), ...args], { cwd: root, env: { ...process.env, ...env } }, (err, stdout, stderr) => {
      resolvePromise({ code: err ? ((err as { code?: number }).code ?? 1) : 0, stdout, stderr });
    });
  });
}

describe("meshwork CLI against a real etcd and a real catalog process", () => {
  let etcd: EtcdServer;
  let catalog: ManagedProcess;
  const dataDir = mkdtempSync(join(tmpdir(), "meshwork-cli-"));
  let env: NodeJS.ProcessEnv;

  beforeAll(async () => {
    etcd = await startEtcd();
    env = { ETCD_ENDPOINTS: etcd.endpoint };
    catalog = startProcess(process.execPath, tsxArgs(join(root, "services/catalog/main.ts")), {
      cwd: root,
      env: { ...process.env, ETCD_ENDPOINTS: etcd.endpoint, MESHWORK_DATA_DIR: dataDir, MESHWORK_INSTANCE_ID: "catalog-cli-1", NATS_URL: "" },
    });
    const client = createEtcdClient(etcd.endpoint);
    try {
      await waitFor(async () => (await registeredInstances(client)).some((i) => i.instance === "catalog-cli-1"), { timeoutMs: 30_000, what: "catalog-cli-1 in the registry" });
    } catch (e) {
      throw new Error(`${(e as Error).message}\n--- catalog output ---\n${catalog.output()}`);
    } finally {
      client.close();
    }
  });

  afterAll(async () => {
    await catalog?.stop();
    await etcd?.stop();
    rmSync(dataDir, { recursive: true, force: true });
  });

  it("ls --json lists the instance as SERVING with its address and version", async () => {
    const r = await meshwork(["ls", "--json"], env);
    expect(r.code).toBe(0);
    const list = JSON.parse(r.stdout) as Array<Record<string, unknown>>;
    expect(list).toEqual([expect.objectContaining({ service: "catalog", instance: "catalog-cli-1", health: "SERVING", version: "0.1.0", address: "127.0.0.1", port: expect.any(Number) })]);
  });

  it("call resolves the service through discovery and prints the product as JSON", async () => {
    const r = await meshwork(["call", "catalog.v1.CatalogService/GetProduct", '{"id":"prod-001"}'], env);
    expect(r.stderr).toBe("");
    expect(r.code).toBe(0);
    expect(JSON.parse(r.stdout)).toEqual({ product: expect.objectContaining({ id: "prod-001", sku: "KIT-001", price: { currencyCode: "EUR", amountMinor: "5900" } }) });
  });

  it("call of an unknown id prints the NotFound code and its detail, and exits 1", async () => {
    const r = await meshwork(["call", "CatalogService/GetProduct", '{"id":"prod-404"}', "--etcd", etcd.endpoint]);
    expect(r.code).toBe(1);
    expect(r.stdout).toBe("");
    expect(r.stderr).toMatch(/^error: NotFound \(5\): /);
    expect(r.stderr).toContain('"reason":"ERROR_REASON_PRODUCT_NOT_FOUND"');
  });

  it("token prints a JWT signed with the secret, carrying sub, scopes and the lifetime asked for", async () => {
    const r = await meshwork(["token", "--sub", "alice", "--scope", "orders:read orders:write", "--ttl", "2h"], { MESHWORK_JWT_SECRET: SECRET });
    expect(r.code).toBe(0);
    const { payload, protectedHeader } = await jose.jwtVerify(r.stdout.trim(), new TextEncoder().encode(SECRET));
    expect(protectedHeader.alg).toBe("HS256");
    expect(payload).toEqual(expect.objectContaining({ sub: "alice", scope: "orders:read orders:write" }));
    expect(payload.exp! - payload.iat!).toBe(7200);
  });

  it("token signs with the key the local mesh keeps in its data dir when no secret is given", async () => {
    const { jwtSecret } = loadOrCreateDevSecrets(dataDir);
    const r = await meshwork(["token", "--sub", "bob", "--data-dir", dataDir], { MESHWORK_JWT_SECRET: "" });
    expect(r.code).toBe(0);
    const { payload } = await jose.jwtVerify(r.stdout.trim(), new TextEncoder().encode(jwtSecret));
    expect(payload.sub).toBe("bob");
    expect(payload.exp! - payload.iat!).toBe(3600);
  });

  it("bad usage exits 2 with a usage message", async () => {
    const runs = await Promise.all([
      meshwork([]),
      meshwork(["frobnicate"]),
      meshwork(["call"]),
      meshwork(["call", "CatalogService/NoSuchMethod", "{}"], env),
      meshwork(["call", "catalog.v1.CatalogService/GetProduct", "{not json"], env),
      meshwork(["token", "--scope", "orders:read"]),
      meshwork(["ls", "--bogus"]),
      meshwork(["dlq", "redrive", "abc"]),
    ]);
    for (const r of runs) {
      expect({ code: r.code, stdout: r.stdout }).toEqual({ code: 2, stdout: "" });
      expect(r.stderr).toContain("usage: meshwork");
    }
  });
});

describe("meshwork dlq against a real NATS JetStream", () => {
  let nats: NatsServer;
  let nc: NatsConnection;

  beforeAll(async () => {
    nats = await startNats();
    nc = await connect({ servers: nats.url });
    await ensureStreams(await nc.jetstreamManager(), SHOP_STREAMS);
  });

  afterAll(async () => {
    await nc?.close();
    await nats?.stop();
  });

  it("lists a dead letter, then redrives it to its original subject and removes it from the DLQ", async () => {
    const h = natsHeaders();
    h.set(Headers.dlqSubject, "orders.order_placed");
    h.set(Headers.dlqConsumer, "notifications");
    h.set(Headers.dlqReason, "handler failed 5 times");
    h.set(Headers.dlqEventId, "evt-1");
    h.set(Headers.dlqDeliveries, "5");
    const ack = await nc.jetstream().publish("dlq.orders.order_placed", new TextEncoder().encode("envelope"), { headers: h });

    const listed = await meshwork(["dlq", "list", "--json", "--nats", nats.url]);
    expect(listed.code).toBe(0);
    expect(listed.stdout.trim().split("\n").map((l) => JSON.parse(l) as unknown)).toEqual([
      expect.objectContaining({ seq: ack.seq, originalSubject: "orders.order_placed", consumer: "notifications", reason: "handler failed 5 times", eventId: "evt-1", deliveries: 5 }),
    ]);

    const redriven = await meshwork(["dlq", "redrive", String(ack.seq)], { NATS_URL: nats.url });
    expect(redriven.code).toBe(0);
    expect(redriven.stdout).toContain("orders.order_placed");
    const jsm = await nc.jetstreamManager();
    expect((await jsm.streams.info("DLQ")).state.messages).toBe(0);
    const copy = await jsm.streams.getMessage("ORDERS", { last_by_subj: "orders.order_placed" });
    expect(new TextDecoder().decode(copy.data)).toBe("envelope");
  });
});
