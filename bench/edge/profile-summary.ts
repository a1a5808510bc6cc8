/**
 * Self time by function (and by package) from a V8 `.cpuprofile`, over the last seconds of the
 * profile only: the load, not the start-up and JIT warm-up before it.
 *
 *   npx tsx bench/edge/profile-summary.ts <file.cpuprofile> [top, default 30] [window s, default 6]
 *
 * How the gateway's profiles were taken: `bench/edge/servers.ts gateway stub` (the gateway
 * answering from an in-process stub) or `gateway <backend port>` started with
 * `taskset -c 0 node --cpu-prof --cpu-prof-dir=DIR --import <tsx loader> bench/edge/servers.ts ...`,
 * loaded with `taskset -c 1 wrk -t1 -c16 -d10s -s post.lua http://127.0.0.1:PORT/catalog.v1.CatalogService/GetProduct`,
 * then stopped with SIGINT (the process writes its profile on a clean exit; the tsx loader thread
 * writes a second, smaller one). V8 samples the main thread by wall clock: on a shared core, time
 * the thread spent preempted lands on whatever it was doing, typically a syscall.
 */
import { readFileSync } from "node:fs";

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  children?: number[];
}
interface CpuProfile {
  nodes: ProfileNode[];
  startTime: number;
  endTime: number;
  samples: number[];
  timeDeltas: number[];
}

function main(): void {
  const [file, topArg, windowArg] = process.argv.slice(2);
  if (!file) throw new Error("usage: profile-summary.ts <file.cpuprofile> [top] [window seconds]");
  const top = Number(topArg ?? 30);
  const windowUs = Number(windowArg ?? 6) * 1e6;
  const p = JSON.parse(readFileSync(file, "utf8")) as CpuProfile;
  const byId = new Map(p.nodes.map((n) => [n.id, n]));
  const counts = new Map<number, number>();
  let t = p.startTime;
  const from = p.endTime - windowUs;
  p.samples.forEach((id, i) => {
    t += p.timeDeltas[i];
    if (t >= from) counts.set(id, (counts.get(id) ?? 0) + 1);
  });
  const short = (url: string) => url.replace(/^.*node_modules\//, "").replace(/^file:\/\/.*?\/(gateway|mesh|bench|gen)\//, "$1/");
  const self = new Map<string, number>();
  const pkg = new Map<string, number>();
  let total = 0;
  for (const [id, c] of counts) {
    const f = byId.get(id)!.callFrame;
    total += c;
    const key = `${f.functionName || "(anonymous)"} ${short(f.url)}${f.url ? `:${f.lineNumber + 1}` : ""}`;
    self.set(key, (self.get(key) ?? 0) + c);
    const m = /node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(f.url);
    const group = m ? m[1] : f.url.startsWith("node:") ? "node:" + f.url.slice(5).split("/")[0] : f.url ? short(f.url).split("/").slice(0, 2).join("/") : f.functionName;
    pkg.set(group, (pkg.get(group) ?? 0) + c);
  }
  const print = (title: string, m: Map<string, number>) => {
    process.stdout.write(`--- ${title} (% of ${total} samples)\n`);
    for (const [k, v] of [...m].sort((a, b) => b[1] - a[1]).slice(0, top)) process.stdout.write(`${((100 * v) / total).toFixed(1).padStart(5)}%  ${k}\n`);
  };
  print("self time by function", self);
  print("self time by package or file", pkg);
}

main();
