import { spawn } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { processAlive, tsxArgs, waitFor } from "../../mesh/infra/index.js";
import { httpGet } from "../../mesh/infra/http-probe.js";
import { parseReplicas } from "./shop.js";
import { parseUpArgs } from "./up-command.js";
import { UsageError } from "./usage.js";

const root = resolve(__dirname, "..", "..");

const alive = processAlive;

describe("meshwork up: Ctrl-C", () => {
  const dataDir = mkdtempSync(join(tmpdir(), "meshwork-up-"));
  afterAll(() => rmSync(dataDir, { recursive: true, force: true }));

  it("drains every process on SIGINT and exits 0", async () => {
    const child = spawn(process.execPath, tsxArgs("scripts/local-mesh/fixtures/up-fixture.ts", "--data-dir", dataDir, "--etcd-port", "0", "--nats-port", "0"), {
      cwd: root,
      env: process.env,
      stdio: ["ignore", "pipe", "pipe"],
    });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (c: Buffer) => (stdout += c.toString()));
    child.stderr.on("data", (c: Buffer) => (stderr += c.toString()));
    const exited = new Promise<number | null>((r) => child.once("exit", (code) => r(code)));
    try {
      await waitFor(() => stdout.includes("Press Ctrl-C"), { timeoutMs: 45_000, what: "the ready banner" });
    } catch (e) {
      child.kill("SIGTERM");
      await exited;
      throw new Error(`${(e as Error).message}\n--- launcher stderr ---\n${stderr}`);
    }
    const pids = [...stdout.matchAll(/^\s+flaky\s+flaky-\d\s+\S+\s+(\d+)$/gm)].map((m) => Number(m[1]));
    const etcd = /etcd\s+(http:\/\/\S+)/.exec(stdout)![1];
    expect(pids).toHaveLength(2);
    expect(pids.every(alive)).toBe(true);

    child.kill("SIGINT");
    expect(await exited).toBe(0);
    expect(stderr).toContain("[meshwork] SIGINT: stopping");
    expect(stderr).toMatch(/flaky-1 exited with code 0/);
    expect(stderr).toMatch(/flaky-2 exited with code 0/);
    expect(stderr).toContain("stopped; every process exited 0");
    expect(pids.some(alive)).toBe(false);
    await expect(httpGet(`${etcd}/health`)).rejects.toThrow();
  });
});

describe("launcher options", () => {
  it("parses replicas per service and refuses unknown services and bad counts", () => {
    expect(parseReplicas("catalog=2, inventory=0", ["catalog", "inventory"])).toEqual({ catalog: 2, inventory: 0 });
    expect(() => parseReplicas("cart=1", ["catalog"])).toThrow(/unknown service 'cart'/);
    expect(() => parseReplicas("catalog=99", ["catalog"])).toThrow(/between 0 and 8/);
    expect(() => parseReplicas("catalog", ["catalog"])).toThrow(/catalog=2/);
  });

  it("takes flags before the environment, and reuses external etcd/NATS from ETCD_ENDPOINTS/NATS_URL", () => {
    const opts = parseUpArgs(["--replicas", "catalog=3", "--gateway-port", "0"], { MESHWORK_REPLICAS: "catalog=1", ETCD_ENDPOINTS: "http://10.0.0.1:2379", NATS_URL: "nats://n:4222", MESHWORK_ETCD_PORT: "3000" });
    expect(opts).toEqual(expect.objectContaining({ replicas: { catalog: 3 }, etcdEndpoints: "http://10.0.0.1:2379", natsUrl: "nats://n:4222", ports: { gateway: 0, etcd: 3000, nats: undefined } }));
    expect(() => parseUpArgs(["--bogus"], {})).toThrow(UsageError);
    expect(() => parseUpArgs(["--gateway-port", "70000"], {})).toThrow(UsageError);
  });
});
