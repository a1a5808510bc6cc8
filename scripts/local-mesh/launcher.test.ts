import { mkdtempSync, rmSync } from "node:fs";
import { createServer, type AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { httpGet } from "../../mesh/infra/http-probe.js";
import { processAlive } from "../../mesh/infra/index.js";
import { startLocalMesh } from "./launcher.js";

const FIXTURE_SERVICE = "scripts/local-mesh/fixtures/crash-once-service.ts";

const alive = processAlive;

describe("startLocalMesh with a service that crashes on its first start", () => {
  const dataDir = mkdtempSync(join(tmpdir(), "meshwork-launcher-"));
  afterAll(() => rmSync(dataDir, { recursive: true, force: true }));

  it("restarts it, waits until it is registered and SERVING, and stops everything with exit 0", async () => {
    const lines: string[] = [];
    const mesh = await startLocalMesh({
      dataDir,
      services: [{ name: "flaky", entry: FIXTURE_SERVICE, replicas: 1, tier: 0, env: { CRASH_ONCE_MARKER: join(dataDir, "crashed") } }],
      gateway: false,
      ports: { etcd: 0, nats: 0, console: 0 },
      backoff: { initialMs: 100 },
      log: (l) => lines.push(l),
    });
    try {
      expect(mesh.services).toEqual([expect.objectContaining({ service: "flaky", instance: "flaky-1" })]);
      expect(mesh.processes()).toEqual([expect.objectContaining({ name: "flaky-1", starts: 2 })]);
      expect(lines).toEqual(expect.arrayContaining(["[flaky-1] crashing on purpose (first start)", expect.stringMatching(/^\[flaky-1\] exited with code 1 after \d+ ms; restarting in 100 ms \(crash 1\)$/)]));
    } finally {
      const report = await mesh.stop();
      expect(report.clean).toBe(true);
      expect(report.processes).toEqual([expect.objectContaining({ name: "flaky-1", code: 0, signal: null, killed: false })]);
    }
    const pid = mesh.services[0].pid;
    expect(alive(pid)).toBe(false);
    await expect(httpGet(`${mesh.etcdEndpoints}/health`)).rejects.toThrow();
  });
});

describe("startLocalMesh fails fast", () => {
  const dataDir = mkdtempSync(join(tmpdir(), "meshwork-fail-"));
  afterAll(() => rmSync(dataDir, { recursive: true, force: true }));

  it("when a service crashes five times in a row while starting, and leaves nothing running", async () => {
    const lines: string[] = [];
    const started = Date.now();
    await expect(
      startLocalMesh({
        dataDir,
        services: [{ name: "broken", entry: "scripts/local-mesh/fixtures/no-such-entry.ts", replicas: 1, tier: 0 }],
        gateway: false,
        ports: { etcd: 0, nats: 0, console: 0 },
        backoff: { initialMs: 20 },
        log: (l) => lines.push(l),
      }),
    ).rejects.toThrow("broken-1 crashed 5 times in a row while starting");
    expect(Date.now() - started).toBeLessThan(30_000);
    const etcdLine = lines.find((l) => l.startsWith("[meshwork] etcd http"))!;
    await expect(httpGet(/etcd (http:\/\/\S+),/.exec(etcdLine)![1] + "/health")).rejects.toThrow();
  });

  it("when the gateway's port is taken", async () => {
    const busy = createServer();
    await new Promise<void>((r) => busy.listen(0, "127.0.0.1", () => r()));
    const port = (busy.address() as AddressInfo).port;
    try {
      await expect(startLocalMesh({ dataDir, services: [], ports: { etcd: 0, nats: 0, gateway: port, console: 0 }, log: () => undefined })).rejects.toThrow(`port 127.0.0.1:${port} is already in use`);
    } finally {
      busy.close();
    }
  });
});
