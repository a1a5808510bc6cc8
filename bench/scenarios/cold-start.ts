/**
 * Scenario 6: cold start of the whole local mesh (scripts/local-mesh startLocalMesh: etcd, NATS,
 * every service replica and the gateway, fresh temp data dir, free ports) until ready (every
 * instance registered and SERVING, the gateway answering) vs the 10 s goal. By default as `npm
 * start` runs it (TypeScript under tsx); with `bundleDir`, from the esbuild bundles the image runs.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { median } from "../lib/stats.js";

/** Median ready time (the launcher's own `readyMs`) and wall time around the call, in ms. */
export interface ColdStartResult {
  readyMs: number;
  wallMs: number;
  samples: { readyMs: number[]; wallMs: number[]; processes: number[] };
  failures: number;
}

/** Starts and stops the local mesh `repeats` times, each from an empty data dir. */
export async function runColdStart(opts: { repeats: number; bundleDir?: string; progress?: (l: string) => void }): Promise<ColdStartResult> {
  const { startLocalMesh } = await import("../../scripts/local-mesh/launcher.js");
  const samples = { readyMs: [] as number[], wallMs: [] as number[], processes: [] as number[] };
  let failures = 0;
  for (let i = 0; i < opts.repeats; i++) {
    const dataDir = mkdtempSync(join(tmpdir(), "meshwork-bench-cold-"));
    const lines: string[] = [];
    const t0 = performance.now();
    try {
      const mesh = await startLocalMesh({ dataDir, bundleDir: opts.bundleDir, ports: { etcd: 0, nats: 0, gateway: 0, console: 0 }, log: (l) => void lines.push(l) });
      samples.wallMs.push(performance.now() - t0);
      samples.readyMs.push(mesh.readyMs);
      samples.processes.push(mesh.processes().length);
      const report = await mesh.stop();
      if (!report.clean) failures++;
    } catch (e) {
      failures++;
      opts.progress?.(`cold start failed: ${(e as Error).message}\n${lines.slice(-20).join("\n")}`);
    } finally {
      rmSync(dataDir, { recursive: true, force: true });
    }
    opts.progress?.(`cold start ${i + 1}/${opts.repeats} done`);
  }
  return { readyMs: median(samples.readyMs), wallMs: median(samples.wallMs), samples, failures };
}
