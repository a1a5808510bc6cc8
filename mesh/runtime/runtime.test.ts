import { Code, ConnectError } from "@connectrpc/connect";
import { spawnSync } from "node:child_process";
import { join } from "node:path";
import { CatalogService } from "../../gen/catalog/v1/catalog_pb.js";
import { startEtcd, startProcess, tsxArgs, waitFor, type EtcdServer, type ManagedProcess } from "../infra/index.js";
import { servicePrefix } from "../registry/index.js";
import { Mesh } from "./index.js";

const TTL_SECONDS = 2;
const fixture = join(__dirname, "fixtures/echo-service.ts");
const buf = join(__dirname, "../../node_modules/.bin/buf");

interface Replica {
  proc: ManagedProcess;
  instanceId: string;
  port: number;
}

let etcd: EtcdServer;
const replicas: Replica[] = [];
const meshes: Mesh[] = [];

async function startReplica(n: number, env: Record<string, string> = {}): Promise<Replica> {
  const instanceId = `echo-${n}`;
  const proc = startProcess(process.execPath, tsxArgs(fixture), {
    env: { ...process.env, ETCD_ENDPOINTS: etcd.endpoint, MESHWORK_INSTANCE_ID: instanceId, MESHWORK_REGISTRY_TTL_SECONDS: String(TTL_SECONDS), MESHWORK_PORT: "0", ...env },
  });
  const port = await waitFor(() => {
    if (proc.proc.exitCode !== null) throw new Error(`replica exited: ${proc.output()}`);
    const m = /ready (\d+)/.exec(proc.output());
    return m ? Number(m[1]) : undefined;
  }, { what: `replica ${instanceId} ready`, timeoutMs: 30_000 });
  const r = { proc, instanceId, port };
  replicas.push(r);
  return r;
}

function newMesh(): Mesh {
  const m = new Mesh({ etcdEndpoints: [etcd.endpoint] });
  meshes.push(m);
  return m;
}

async function registeredInstances(mesh: Mesh): Promise<string[]> {
  const keys = await mesh.etcd.getAll().prefix(servicePrefix("echo")).keys();
  return keys.map((k) => k.slice(servicePrefix("echo").length)).sort();
}

beforeEach(async () => {
  etcd = await startEtcd();
});

afterEach(async () => {
  await Promise.all(replicas.splice(0).map((r) => r.proc.kill()));
  await Promise.all(meshes.splice(0).map((m) => m.close()));
  await etcd.stop();
});

/** Runs `workers` loops of calls until `until()` resolves; records every outcome. */
function steadyLoad(mesh: Mesh, workers: number) {
  const client = mesh.client(CatalogService, { serviceName: "echo" });
  const stats = { ok: 0, failed: [] as string[], servedBy: new Map<string, number>() };
  let running = true;
  const loops = Array.from({ length: workers }, async () => {
    while (running) {
      try {
        const r = await client.getProduct({ id: "p" }, { timeoutMs: 2_000 });
        stats.ok++;
        stats.servedBy.set(r.product!.name, (stats.servedBy.get(r.product!.name) ?? 0) + 1);
      } catch (e) {
        stats.failed.push(`${Code[ConnectError.from(e).code]}: ${ConnectError.from(e).rawMessage}`);
      }
    }
  });
  return {
    stats,
    async stop() {
      running = false;
      await Promise.all(loops);
    },
  };
}

describe("runtime against a real etcd", () => {
  it("registers, serves through discovery, and drains on SIGTERM with 0 failed and 0 retried calls", async () => {
    await Promise.all([startReplica(1), startReplica(2), startReplica(3)]);
    const mesh = newMesh();
    expect(await registeredInstances(mesh)).toEqual(["echo-1", "echo-2", "echo-3"]);
    const watcher = mesh.discovery.watch("echo");
    await watcher.ready();
    let attempts = 0;
    const load = steadyLoad(mesh, 8);
    await waitFor(() => load.stats.servedBy.size === 3 && load.stats.ok > 300, { what: "load on all three replicas" });
    attempts = load.stats.ok;

    const victim = replicas[0];
    const sentAt = Date.now();
    victim.proc.proc.kill("SIGTERM");
    await waitFor(async () => !(await registeredInstances(mesh)).includes(victim.instanceId), { what: "key removed" });
    const keyGoneMs = Date.now() - sentAt;
    const exit = await victim.proc.exited;
    const servedAtStop = load.stats.ok;
    await waitFor(() => load.stats.ok > servedAtStop + 300, { what: "load continuing on the survivors" });
    await load.stop();

    expect(exit).toEqual({ code: 0, signal: null });
    expect(keyGoneMs).toBeLessThanOrEqual(1_000);
    expect(load.stats.failed).toEqual([]);
    // The transport has no retry policy here: every call is exactly one attempt, so any call the
    // drain broke would have been counted as failed above.
    expect(load.stats.ok).toBeGreaterThan(attempts);
    const survivors = replicas.filter((r) => r !== victim).map((r) => r.instanceId).sort().join();
    await waitFor(() => watcher.endpoints().map((i) => i.instance).sort().join() === survivors, { what: "watcher converged on the survivors" });
  });

  it("removes a SIGKILLed replica's key within TTL + 1 s", async () => {
    const r = await startReplica(1);
    const mesh = newMesh();
    const watcher = mesh.discovery.watch("echo");
    await watcher.ready();
    await waitFor(() => watcher.endpoints().length === 1, { what: "watcher sees the replica" });
    const killedAt = Date.now();
    await r.proc.kill();
    await waitFor(() => watcher.endpoints().length === 0, { what: "watcher drops the replica", timeoutMs: (TTL_SECONDS + 3) * 1000 });
    expect(Date.now() - killedAt).toBeLessThanOrEqual((TTL_SECONDS + 1) * 1000);
    expect(await registeredInstances(mesh)).toEqual([]);
  });

  it("keeps calling from the cache through an etcd outage longer than the TTL, then re-registers and resumes the watch", async () => {
    await Promise.all([startReplica(1), startReplica(2)]);
    const mesh = newMesh();
    const watcher = mesh.discovery.watch("echo");
    await watcher.ready();
    await waitFor(() => watcher.endpoints().length === 2, { what: "both replicas seen" });
    const load = steadyLoad(mesh, 4);
    await waitFor(() => load.stats.ok > 100, { what: "initial load" });

    await etcd.kill();
    const downAt = Date.now();
    const okAtDown = load.stats.ok;
    // The outage lasts past the lease TTL: the scenario's length, measured by calls still served.
    await waitFor(() => Date.now() - downAt > (TTL_SECONDS + 1) * 1000 && load.stats.ok > okAtDown + 200, {
      what: "outage longer than the TTL with calls served from the cache",
      timeoutMs: 20_000,
    });
    expect(watcher.endpoints().map((i) => i.instance).sort()).toEqual(["echo-1", "echo-2"]);
    await etcd.restart();

    await waitFor(async () => (await registeredInstances(mesh)).join() === "echo-1,echo-2", { what: "both re-registered", timeoutMs: 20_000 });
    await load.stop();
    expect(load.stats.failed).toEqual([]);
    const fresh = await registeredInstances(mesh);
    await waitFor(() => watcher.endpoints().map((i) => i.instance).sort().join() === fresh.join(), { what: "watch matches a fresh read" });
  });

  it("answers buf curl through reflection: lists methods and calls one", async () => {
    const r = await startReplica(1);
    const list = spawnSync(buf, ["curl", "--protocol", "grpc", "--http2-prior-knowledge", "--list-methods", `http://127.0.0.1:${r.port}`], { encoding: "utf8" });
    expect(list.stderr).toBe("");
    expect(list.stdout.split("\n")).toEqual(expect.arrayContaining(["catalog.v1.CatalogService/GetProduct", "grpc.health.v1.Health/Check"]));
    const call = spawnSync(buf, ["curl", "--protocol", "grpc", "--http2-prior-knowledge", "-d", '{"id":"p42"}', `http://127.0.0.1:${r.port}/catalog.v1.CatalogService/GetProduct`], { encoding: "utf8" });
    expect(call.stderr).toBe("");
    expect(JSON.parse(call.stdout)).toEqual({ product: { id: "p42", name: "echo-1" } });
  });
});
