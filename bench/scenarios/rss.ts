/**
 * Scenario 5: resident memory of each idle service process started as the container image starts
 * it (the esbuild bundle dist/bundle/<name>.js with deploy/node-flags, real etcd + NATS, its own
 * temp data dir) vs the 80 MB goal, read from /proc/<pid>/status after the instance registered
 * and sat idle. Baseline, side by side in the same rounds: the same service from tsc's per-module
 * dist/ (how the image ran services before bundling). Also the tsx loader's floor (what
 * `npm start` adds in development): an idle file under tsx vs the same idle loop in plain node.
 */
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createEtcdClient } from "../../mesh/etcd/client.js";
import { buildBundle, buildDist, bundledServiceArgs, compiledServiceArgs } from "../lib/compiled.js";
import { median } from "../lib/stats.js";
import { startEtcd, startNats, startProcess, tsxArgs, waitFor, type ManagedProcess } from "../../mesh/infra/index.js";
import { parseInstance, servicePrefix } from "../../mesh/registry/index.js";

/** The shop's services, each started once per variant and round. */
export const SERVICES = ["catalog", "inventory", "payments", "orders", "notifications"];

// Idle RSS varies by ~1 MiB between starts of the same file: three rounds give a median.
const DEFAULT_ROUNDS = 3;

/** RSS and peak RSS in MiB. */
export interface Rss {
  rssMiB: number;
  hwmMiB: number;
}

/** One way of starting a service: node arguments for service `name`. */
export interface RssVariant {
  label: string;
  args: (name: string) => string[];
}

/** Medians per variant label and service, plus every sample. */
export interface IdleRssResult {
  medians: Record<string, Record<string, Rss>>;
  samples: Record<string, Record<string, Rss[]>>;
  failures: number;
}

/** Scenario 5's result: bundles (what the image runs) and tsc dist/ (baseline), medians in MiB. */
export interface RssResult {
  services: Record<string, Rss>;
  tscDist: Record<string, Rss>;
  rounds: number;
  plainNodeIdleMiB: number;
  tsxIdleMiB: number;
  failures: number;
}

function status(pid: number): Rss {
  const s = readFileSync(`/proc/${pid}/status`, "utf8");
  const kb = (k: string) => Number(new RegExp(`^${k}:\\s+(\\d+) kB`, "m").exec(s)?.[1] ?? NaN);
  return { rssMiB: kb("VmRSS") / 1024, hwmMiB: kb("VmHWM") / 1024 };
}

async function idleRss(p: ManagedProcess, settleMs: number): Promise<number> {
  await waitFor(() => p.output().includes("ready"), { timeoutMs: 30_000, what: "idle program ready" });
  await new Promise((r) => setTimeout(r, settleMs)); // the idle period being measured, not a synchronisation
  return status(p.proc.pid!).rssMiB;
}

/**
 * Starts every service once per variant (all at the same time, so each variant sees the same
 * machine load), waits until all are registered, lets them idle `settleMs`, reads RSS, stops them
 * with SIGTERM (a non-zero exit counts as a failure); `rounds` times, the start order rotated.
 */
export async function measureIdleRss(opts: {
  variants: RssVariant[];
  rounds: number;
  settleMs: number;
  services?: string[];
  env?: NodeJS.ProcessEnv;
  progress?: (l: string) => void;
}): Promise<IdleRssResult> {
  const services = opts.services ?? SERVICES;
  const etcd = await startEtcd();
  const nats = await startNats();
  const client = createEtcdClient(etcd.endpoint);
  const samples: IdleRssResult["samples"] = Object.fromEntries(opts.variants.map((v) => [v.label, Object.fromEntries(services.map((s) => [s, [] as Rss[]]))]));
  let failures = 0;
  try {
    for (let round = 0; round < opts.rounds; round++) {
      const runs = opts.variants.flatMap((variant) => services.map((name) => ({ variant, name })));
      const order = runs.map((_, i) => runs[(i + round) % runs.length]);
      const dirs: string[] = [];
      const procs: { variant: RssVariant; name: string; p: ManagedProcess }[] = [];
      try {
        for (const { variant, name } of order) {
          const dataDir = mkdtempSync(join(tmpdir(), `meshwork-bench-rss-${name}-`));
          dirs.push(dataDir);
          const p = startProcess(process.execPath, variant.args(name), {
            env: { ...process.env, ...opts.env, ETCD_ENDPOINTS: etcd.endpoint, NATS_URL: nats.url, MESHWORK_DATA_DIR: dataDir, MESHWORK_PORT: "0" },
          });
          procs.push({ variant, name, p });
        }
        await waitFor(
          async () => {
            const byService = new Map<string, string[]>();
            for (const { variant, name, p } of procs) {
              if (p.proc.exitCode !== null) throw new Error(`${name} (${variant.label}) exited: ${p.output()}`);
              if (!byService.has(name)) byService.set(name, Object.values(await client.getAll().prefix(servicePrefix(name)).strings()).map((v) => parseInstance(v).metadata.pid ?? ""));
              if (!byService.get(name)!.includes(String(p.proc.pid))) return false;
            }
            return true;
          },
          { timeoutMs: 90_000, intervalMs: 100, what: "every service registered" },
        ).catch((e: Error) => {
          failures++;
          throw e;
        });
        opts.progress?.(`rss: round ${round + 1}/${opts.rounds}: every service registered`);
        await new Promise((r) => setTimeout(r, opts.settleMs)); // the idle period being measured, not a synchronisation
        for (const { variant, name, p } of procs) samples[variant.label][name].push(status(p.proc.pid!));
        await Promise.all(
          procs.map(async ({ variant, name, p }) => {
            p.proc.kill("SIGTERM");
            const exit = await Promise.race([p.exited, new Promise<undefined>((r) => setTimeout(r, 15_000))]);
            if (!exit || exit.code !== 0) {
              failures++;
              opts.progress?.(`rss: ${name} (${variant.label}) did not exit 0 on SIGTERM: ${p.output().slice(-2000)}`);
            }
          }),
        );
      } finally {
        for (const { p } of procs) await p.kill();
        for (const d of dirs) rmSync(d, { recursive: true, force: true });
      }
    }
  } finally {
    client.close();
    await nats.stop();
    await etcd.stop();
  }
  const medians = Object.fromEntries(
    Object.entries(samples).map(([label, byService]) => [
      label,
      Object.fromEntries(Object.entries(byService).map(([name, s]) => [name, { rssMiB: median(s.map((x) => x.rssMiB)), hwmMiB: median(s.map((x) => x.hwmMiB)) }])),
    ]),
  );
  return { medians, samples, failures };
}

/** Scenario 5: the bundles vs tsc's dist/, side by side, then the tsx loader's floor. */
export async function runRss(opts: { settleMs: number; rounds?: number; progress?: (l: string) => void }): Promise<RssResult> {
  opts.progress?.("rss: compiling to dist/ and bundling to dist/bundle/");
  const dist = buildDist();
  const bundle = await buildBundle();
  const rounds = opts.rounds ?? DEFAULT_ROUNDS;
  const r = await measureIdleRss({
    variants: [
      { label: "bundle", args: (name) => bundledServiceArgs(bundle, name) },
      { label: "tsc dist", args: (name) => compiledServiceArgs(dist, name) },
    ],
    rounds,
    settleMs: opts.settleMs,
    progress: opts.progress,
  });
  const plain = startProcess(process.execPath, ["-e", 'setInterval(() => undefined, 1 << 30); process.stdout.write("ready\\n")']);
  const tsx = startProcess(process.execPath, tsxArgs(join(__dirname, "idle.ts")));
  try {
    const [plainNodeIdleMiB, tsxIdleMiB] = await Promise.all([idleRss(plain, opts.settleMs), idleRss(tsx, opts.settleMs)]);
    return { services: r.medians.bundle, tscDist: r.medians["tsc dist"], rounds, plainNodeIdleMiB, tsxIdleMiB, failures: r.failures };
  } finally {
    await plain.kill();
    await tsx.kill();
  }
}
