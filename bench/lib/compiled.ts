/**
 * The project compiled to JavaScript the way the container image runs it (deploy/Dockerfile:
 * `tsc -p .` into dist/), so benchmarks can measure production processes instead of the tsx
 * development loader, which alone adds ~40 MiB of RSS and seconds of start-up per process.
 */
import { execFileSync } from "node:child_process";
import { join } from "node:path";
import { serviceNodeFlags } from "../../mesh/infra/index.js";

const ROOT = join(__dirname, "../..");

/** Compiles the repository into `dist/` (gitignored) once per call and returns dist's path. */
export function buildDist(): string {
  const out = join(ROOT, "dist");
  execFileSync(process.execPath, [join(ROOT, "node_modules/typescript/bin/tsc"), "-p", ROOT, "--outDir", out], { stdio: "inherit" });
  return out;
}

/**
 * Node arguments that run compiled service `name` as the image's entrypoint does: deploy/node-flags
 * (or `MESHWORK_NODE_FLAGS` from `env`), then dist/services/<name>/main.js.
 */
export function compiledServiceArgs(dist: string, name: string, env: NodeJS.ProcessEnv = process.env): string[] {
  return [...serviceNodeFlags(env), join(dist, `services/${name}/main.js`)];
}
