/**
 * The project compiled to JavaScript so benchmarks measure production processes instead of the
 * tsx development loader, which alone adds ~40 MiB of RSS and seconds of start-up per process:
 * the esbuild bundles the container image runs (scripts/build.ts, dist/bundle/<name>.js) and,
 * as their baseline, the per-module output of `tsc -p .` (dist/).
 */
import { execFileSync } from "node:child_process";
import { join } from "node:path";
import { serviceNodeFlags } from "../../mesh/infra/index.js";
import { buildBundles, DEFAULT_BUNDLE_DIR } from "../../scripts/build.js";

const ROOT = join(__dirname, "../..");

/** Compiles the repository into `dist/` (gitignored) once per call and returns dist's path. */
export function buildDist(): string {
  const out = join(ROOT, "dist");
  execFileSync(process.execPath, [join(ROOT, "node_modules/typescript/bin/tsc"), "-p", ROOT, "--outDir", out], { stdio: "inherit" });
  return out;
}

/**
 * Node arguments that run service `name` from tsc's dist/ (the image's layout before bundling):
 * deploy/node-flags (or `MESHWORK_NODE_FLAGS` from `env`), then dist/services/<name>/main.js.
 */
export function compiledServiceArgs(dist: string, name: string, env: NodeJS.ProcessEnv = process.env): string[] {
  return [...serviceNodeFlags(env), join(dist, `services/${name}/main.js`)];
}

/** Bundles every service and the gateway as the image build does; returns the bundles' folder. */
export async function buildBundle(outDir = DEFAULT_BUNDLE_DIR): Promise<string> {
  return (await buildBundles({ outDir })).outDir;
}

/**
 * Node arguments that run service `name` as the image's entrypoint does: deploy/node-flags (or
 * `MESHWORK_NODE_FLAGS` from `env`), then the bundle `<bundleDir>/<name>.js`.
 */
export function bundledServiceArgs(bundleDir: string, name: string, env: NodeJS.ProcessEnv = process.env): string[] {
  return [...serviceNodeFlags(env), join(bundleDir, `${name}.js`)];
}
