/**
 * Scenario 4: discovery convergence against a real etcd. A watcher in this process watches the
 * echo fixture (wired like a real service's main.ts); we time SIGTERM → watcher drops it (goal
 * ≤ 1 s, RELIABILITY.md R2) and SIGKILL → watcher drops it (goal ≤ TTL + 1 s, R1), and how long
 * a running watcher takes to see 100 in-process registrations vs 1 (same run).
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ServiceWatcher } from "../../mesh/discovery/index.js";
import { createEtcdClient } from "../../mesh/etcd/client.js";
import { startEtcd, startProcess, tsxArgs, waitFor } from "../../mesh/infra/index.js";
import { Registration } from "../../mesh/registry/index.js";
import { median } from "../lib/stats.js";

const FIXTURE = join(__dirname, "../../mesh/runtime/fixtures/echo-service.ts");
// The registry's default lease TTL (mesh/registry/registration.ts); the fixture runs with it.
const TTL_SECONDS = 5;
// 5 ms polling: the timing resolution of these measurements, far below the figures measured.
const POLL_MS = 5;

/** Medians in ms over `repeats`, the raw samples and failed probes. */
export interface DiscoveryResult {
  sigtermMs: number;
  sigkillMs: number;
  see100Ms: number;
  see1Ms: number;
  ttlSeconds: number;
  samples: { sigterm: number[]; sigkill: number[]; see100: number[]; see1: number[] };
  failures: number;
  /** What each failure was (exit status, timeout), for the report. */
  problems: string[];
}

/** Runs each measurement `repeats` times against one fresh etcd. */
export async function runDiscovery(opts: { repeats: number; progress?: (l: string) => void }): Promise<DiscoveryResult> {
  const etcd = await startEtcd();
  const client = createEtcdClient(etcd.endpoint);
  const watcher = new ServiceWatcher(client, "echo");
  const dataDir = mkdtempSync(join(tmpdir(), "meshwork-bench-discovery-"));
  const samples = { sigterm: [] as number[], sigkill: [] as number[], see100: [] as number[], see1: [] as number[] };
  let failures = 0;
  const problems: string[] = [];
  try {
    await watcher.ready();
    let n = 0;
    const dropTime = async (signal: "SIGTERM" | "SIGKILL"): Promise<number> => {
      const id = `echo-bench-${++n}`;
      const p = startProcess(process.execPath, tsxArgs(FIXTURE), {
        env: { ...process.env, ETCD_ENDPOINTS: etcd.endpoint, MESHWORK_INSTANCE_ID: id, MESHWORK_DATA_DIR: dataDir, NATS_URL: "" },
      });
      try {
        await waitFor(
          () => {
            if (p.proc.exitCode !== null) throw new Error(`echo fixture exited: ${p.output()}`);
            return watcher.endpoints().some((e) => e.instance === id);
          },
          { timeoutMs: 60_000, intervalMs: POLL_MS, what: `${id} in the watcher` },
        );
        const t0 = performance.now();
        p.proc.kill(signal);
        await waitFor(() => !watcher.endpoints().some((e) => e.instance === id), { timeoutMs: 30_000, intervalMs: POLL_MS, what: `${id} dropped after ${signal}` });
        const ms = performance.now() - t0;
        const exit = await p.exited;
        // SIGTERM must drain and exit 0; anything else is a failed probe.
        if (signal === "SIGTERM" && exit.code !== 0) {
          failures++;
          problems.push(`${id}: SIGTERM after ${ms.toFixed(0)} ms ended with code ${exit.code} signal ${exit.signal}; output: ${p.output().slice(-500)}`);
        }
        return ms;
      } catch (e) {
        failures++;
        problems.push(`${id} (${signal}): ${(e as Error).message}`);
        throw e;
      } finally {
        await p.kill();
      }
    };
    const seeN = async (count: number, tag: string): Promise<number> => {
      const service = `bulk-${tag}`;
      const w = new ServiceWatcher(client, service);
      await w.ready();
      const t0 = performance.now();
      const regs = Array.from(
        { length: count },
        (_, i) =>
          new Registration(client, {
            service,
            instance: `${service}-${i}`,
            address: "127.0.0.1",
            port: 10_000 + i,
            protocols: ["grpc"],
            version: "0.0.0",
            startedAt: new Date().toISOString(),
            metadata: {},
          }),
      );
      try {
        await waitFor(() => w.endpoints().length === count, { timeoutMs: 30_000, intervalMs: POLL_MS, what: `${count} instances of ${service}` });
        return performance.now() - t0;
      } finally {
        await Promise.all(regs.map((r) => r.deregister().catch(() => failures++)));
        await w.close();
      }
    };
    for (let i = 0; i < opts.repeats; i++) {
      samples.sigterm.push(await dropTime("SIGTERM"));
      samples.sigkill.push(await dropTime("SIGKILL"));
      samples.see1.push(await seeN(1, `one-${i}`));
      samples.see100.push(await seeN(100, `hundred-${i}`));
      opts.progress?.(`discovery repeat ${i + 1}/${opts.repeats} done`);
    }
  } finally {
    await watcher.close();
    client.close();
    await etcd.stop();
    rmSync(dataDir, { recursive: true, force: true });
  }
  return {
    sigtermMs: median(samples.sigterm),
    sigkillMs: median(samples.sigkill),
    see100Ms: median(samples.see100),
    see1Ms: median(samples.see1),
    ttlSeconds: TTL_SECONDS,
    samples,
    failures,
    problems,
  };
}
