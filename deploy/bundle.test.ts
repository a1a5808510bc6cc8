/**
 * The esbuild bundles the image runs (scripts/build.ts) work as the per-module code does, laid
 * out as in the image (<app>/dist/bundle beside a node_modules holding only the folders
 * runtime-modules.txt lists, outside the checkout so nothing else resolves): every service's
 * bundle, started as the entrypoint starts it, registers in a real etcd, answers grpc.health.v1
 * and real calls, and drains to exit 0 on SIGTERM; the gateway's bundle routes a REST call to the
 * bundled catalog; packages left to node_modules (the OTLP exporter, the B3 propagator) load from
 * a bundle when configured.
 */
import { createClient } from "@connectrpc/connect";
import { cpSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { CatalogService } from "../gen/catalog/v1/catalog_pb.js";
import { createMeshTransport, staticEndpoints } from "../mesh/client/index.js";
import { createEtcdClient } from "../mesh/etcd/client.js";
import { freePort, serviceNodeFlags, startEtcd, startNats, startProcess, waitFor, type EtcdServer, type ManagedProcess, type NatsServer } from "../mesh/infra/index.js";
import { waitForRegistration } from "../mesh/testing/registration.js";
import { checkHealth } from "../scripts/local-mesh/instances.js";
import { buildBundles, type BuildResult } from "../scripts/build.js";

// Test-only keys: HS256 needs at least 32 bytes.
const JWT_SECRET = "bundle-test-jwt-secret-0123456789abcdef";
const IDENTITY_KEY = "bundle-test-identity-key-0123456789abcdef";

const ROOT = resolve(__dirname, "..");
let dir: string;
let built: BuildResult;
let etcd: EtcdServer;
let nats: NatsServer;
let collector: Server;
const received: { path: string; contentType: string | undefined }[] = [];
const procs: ManagedProcess[] = [];

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "meshwork-bundle-"));
  // A stand-in OTLP/HTTP collector: what matters is that the exporter loaded and posted.
  collector = createServer((req, res) => {
    received.push({ path: req.url ?? "", contentType: req.headers["content-type"] });
    req.resume().on("end", () => res.writeHead(200, { "content-type": "application/x-protobuf" }).end());
  });
  await new Promise<void>((r) => collector.listen(0, "127.0.0.1", r));
  [built, etcd, nats] = await Promise.all([buildBundles({ outDir: join(dir, "app", "dist", "bundle") }), startEtcd(), startNats()]);
  // What the image's prod-deps stage does with `cp -a --parents` (from this checkout's install).
  for (const m of built.runtimeModules) cpSync(join(ROOT, m), join(dir, "app", m), { recursive: true, verbatimSymlinks: true });
});

afterAll(async () => {
  for (const p of procs) await p.kill();
  await nats?.stop();
  await etcd?.stop();
  await new Promise((r) => collector?.close(r));
  rmSync(dir, { recursive: true, force: true });
});

test("the build writes one bundle per entry, ASCII only, and lists the node_modules folders they need", () => {
  expect(Object.keys(built.bundles).sort()).toEqual(["catalog", "gateway", "inventory", "notifications", "orders", "payments"]);
  for (const file of Object.values(built.bundles)) {
    const code = readFileSync(file.replace(/\.js$/, ".code.js"), "latin1");
    expect({ file, nonAscii: /[^\x00-\x7f]/.test(code) }).toEqual({ file, nonAscii: false });
  }
  const modules = readFileSync(join(built.outDir, "runtime-modules.txt"), "utf8").trim().split("\n");
  expect(modules).toEqual(built.runtimeModules);
  expect(modules).toEqual(expect.arrayContaining(["node_modules/better-sqlite3", "node_modules/pg", "node_modules/@opentelemetry/exporter-trace-otlp-proto"]));
  // Bundled, so not shipped: the image's node_modules is only what the bundles require.
  expect(modules).not.toContain("node_modules/kysely");
  expect(modules).not.toContain("node_modules/etcd3");
});

test("bundled services serve calls, the bundled gateway routes to them, and all exit 0 on SIGTERM", async () => {
  const services = Object.keys(built.bundles).filter((n) => n !== "gateway");
  const collectorUrl = `http://127.0.0.1:${(collector.address() as AddressInfo).port}`;
  const common = { ...process.env, ETCD_ENDPOINTS: etcd.endpoint, NATS_URL: nats.url, MESHWORK_PORT: "0", MESHWORK_HOST: "127.0.0.1", MESHWORK_IDENTITY_KEY: IDENTITY_KEY };
  const started = new Map<string, ManagedProcess>();
  for (const name of services) {
    // catalog also exports OTLP (a lazily required package the bundle leaves to node_modules) and
    // propagates B3 (another): quickly, so the test sees the posts.
    const otel = name === "catalog" ? { OTEL_EXPORTER_OTLP_ENDPOINT: collectorUrl, OTEL_METRIC_EXPORT_INTERVAL: "200", OTEL_BSP_SCHEDULE_DELAY: "100", OTEL_PROPAGATORS: "b3" } : {};
    const p = startProcess(process.execPath, [...serviceNodeFlags(), built.bundles[name]], { env: { ...common, ...otel, MESHWORK_DATA_DIR: mkdtempSync(join(tmpdir(), `meshwork-bundle-${name}-`)) } });
    procs.push(p);
    started.set(name, p);
  }
  const gatewayPort = await freePort();
  const gateway = startProcess(process.execPath, [built.bundles.gateway], {
    env: { ...common, MESHWORK_GATEWAY_HOST: "127.0.0.1", MESHWORK_GATEWAY_PORT: String(gatewayPort), MESHWORK_JWT_SECRET: JWT_SECRET },
  });
  procs.push(gateway);
  const etcdClient = createEtcdClient(etcd.endpoint);
  try {
    for (const [name, p] of started) {
      const instance = await waitForRegistration(etcdClient, name, p);
      expect({ name, ...(await checkHealth(`${instance.address}:${instance.port}`)) }).toEqual({ name, health: "SERVING" });
      if (name !== "catalog") continue;
      const transport = createMeshTransport({ endpoints: staticEndpoints(`${instance.address}:${instance.port}`) });
      try {
        const { product } = await createClient(CatalogService, transport).getProduct({ id: "prod-001" });
        expect(product?.sku).toBe("KIT-001");
      } finally {
        transport.close();
      }
    }
    const viaGateway = await waitFor(
      async () => {
        if (gateway.proc.exitCode !== null) throw new Error(`the gateway exited:\n${gateway.output()}`);
        const res = await fetch(`http://127.0.0.1:${gatewayPort}/v1/products/prod-001`).catch(() => undefined);
        return res?.status === 200 ? ((await res.json()) as { product?: { sku?: string } }) : undefined;
      },
      { timeoutMs: 30_000, what: `the bundled gateway answering GET /v1/products/prod-001 (${gateway.output().slice(-500)})` },
    );
    expect(viaGateway.product?.sku).toBe("KIT-001");
    await waitFor(() => ["/v1/traces", "/v1/metrics"].every((path) => received.some((r) => r.path === path)), { timeoutMs: 15_000, what: "catalog's OTLP exports to /v1/traces and /v1/metrics" });
    expect(received.find((r) => r.path === "/v1/traces")?.contentType).toBe("application/x-protobuf");
    for (const p of [gateway, ...started.values()]) p.proc.kill("SIGTERM");
    for (const [name, p] of [["gateway", gateway] as const, ...started]) expect({ name, exit: await p.exited }).toEqual({ name, exit: { code: 0, signal: null } });
  } finally {
    etcdClient.close();
  }
});
