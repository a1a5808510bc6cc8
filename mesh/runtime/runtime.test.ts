import { spawnSync } from "node:child_process";
import { join } from "node:path";
import { startEtcd, startProcess, tsxArgs, waitFor, type EtcdServer, type ManagedProcess } from "../infra/index.js";

const fixture = join(__dirname, "fixtures/echo-service.ts");
const buf = join(__dirname, "../../node_modules/.bin/buf");

interface Replica {
  proc: ManagedProcess;
  instanceId: string;
  port: number;
}

let etcd: EtcdServer;
const replicas: Replica[] = [];

async function startReplica(n: number): Promise<Replica> {
  const instanceId = `echo-${n}`;
  const proc = startProcess(process.execPath, tsxArgs(fixture), {
    env: { ...process.env, ETCD_ENDPOINTS: etcd.endpoint, MESHWORK_INSTANCE_ID: instanceId, MESHWORK_PORT: "0" },
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

beforeEach(async () => {
  etcd = await startEtcd();
});

afterEach(async () => {
  await Promise.all(replicas.splice(0).map((r) => r.proc.kill()));
  await etcd.stop();
});

// Registration, discovery, drain on SIGTERM, kill -9 and etcd outages are proven under load by the
// fault battery (tests/faults/scenarios r1, r2, r3: process-level, every call recorded).
describe("an echo service process", () => {
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
