/**
 * Scenario 5: resident memory of each idle service process, compiled to JavaScript and started as
 * the container image starts it (dist/services/<name>/main.js with deploy/node-flags, real etcd +
 * NATS, its own temp data dir) vs the 80 MB goal, read from /proc/<pid>/status after the instance
 * registered and sat idle. Also the
 * tsx loader's floor (what `npm start` adds in development): an idle file under tsx vs the same
 * idle loop in plain node.
 */
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createEtcdClient } from "../../mesh/etcd/client.js";
import { buildDist, compiledServiceArgs } from "../lib/compiled.js";
import { startEtcd, startNats, startProcess, tsxArgs, waitFor, type ManagedProcess } from "../../mesh/infra/index.js";
import { parseInstance, servicePrefix } from "../../mesh/registry/index.js";

/** The shop's services, each started once. */
export const SERVICES = ["catalog", "inventory", "payments", "orders", "notifications"];

/** RSS and peak RSS in MiB per service, and the loader floor. */
export interface RssResult {
  services: Record<string, { rssMiB: number; hwmMiB: number }>;
  plainNodeIdleMiB: number;
  tsxIdleMiB: number;
  failures: number;
}

function status(pid: number): { rssMiB: number; hwmMiB: number } {
  const s = readFileSync(`/proc/${pid}/status`, "utf8");
  const kb = (k: string) => Number(new RegExp(`^${k}:\\s+(\\d+) kB`, "m").exec(s)?.[1] ?? NaN);
  return { rssMiB: kb("VmRSS") / 1024, hwmMiB: kb("VmHWM") / 1024 };
}

async function idleRss(p: ManagedProcess, settleMs: number): Promise<number> {
  await waitFor(() => p.output().includes("ready"), { timeoutMs: 30_000, what: "idle program ready" });
  await new Promise((r) => setTimeout(r, settleMs)); // the idle period being measured, not a synchronisation
  return status(p.proc.pid!).rssMiB;
}

/** Starts every service, waits until all are registered, lets them idle `settleMs`, reads RSS. */
export async function runRss(opts: { settleMs: number; progress?: (l: string) => void }): Promise<RssResult> {
  opts.progress?.("rss: compiling to dist/");
  const dist = buildDist();
  const etcd = await startEtcd();
  const nats = await startNats();
  const client = createEtcdClient(etcd.endpoint);
  const dirs: string[] = [];
  const procs: Record<string, ManagedProcess> = {};
  let failures = 0;
  try {
    for (const name of SERVICES) {
      const dataDir = mkdtempSync(join(tmpdir(), `meshwork-bench-rss-${name}-`));
      dirs.push(dataDir);
      procs[name] = startProcess(process.execPath, compiledServiceArgs(dist, name), {
        env: { ...process.env, ETCD_ENDPOINTS: etcd.endpoint, NATS_URL: nats.url, MESHWORK_DATA_DIR: dataDir, MESHWORK_PORT: "0" },
      });
    }
    await waitFor(
      async () => {
        for (const [name, p] of Object.entries(procs)) {
          if (p.proc.exitCode !== null) throw new Error(`${name} exited: ${p.output()}`);
          const values = Object.values(await client.getAll().prefix(servicePrefix(name)).strings());
          if (!values.some((v) => parseInstance(v).metadata.pid === String(p.proc.pid))) return false;
        }
        return true;
      },
      { timeoutMs: 90_000, intervalMs: 100, what: "every service registered" },
    ).catch((e: Error) => {
      failures++;
      throw e;
    });
    opts.progress?.("rss: every service registered");
    await new Promise((r) => setTimeout(r, opts.settleMs)); // the idle period being measured, not a synchronisation
    const services: RssResult["services"] = {};
    for (const [name, p] of Object.entries(procs)) services[name] = status(p.proc.pid!);
    for (const [name, p] of Object.entries(procs)) {
      p.proc.kill("SIGTERM");
      const exit = await Promise.race([p.exited, new Promise<undefined>((r) => setTimeout(r, 15_000))]);
      if (!exit || exit.code !== 0) {
        failures++;
        opts.progress?.(`rss: ${name} did not exit 0 on SIGTERM`);
      }
    }
    const plain = startProcess(process.execPath, ["-e", 'setInterval(() => undefined, 1 << 30); process.stdout.write("ready\\n")']);
    const tsx = startProcess(process.execPath, tsxArgs(join(__dirname, "idle.ts")));
    try {
      const [plainNodeIdleMiB, tsxIdleMiB] = await Promise.all([idleRss(plain, opts.settleMs), idleRss(tsx, opts.settleMs)]);
      return { services, plainNodeIdleMiB, tsxIdleMiB, failures };
    } finally {
      await plain.kill();
      await tsx.kill();
    }
  } finally {
    for (const p of Object.values(procs)) await p.kill();
    client.close();
    await nats.stop();
    await etcd.stop();
    for (const d of dirs) rmSync(d, { recursive: true, force: true });
  }
}
