/**
 * The project compiled to JavaScript the way the container image runs it (deploy/Dockerfile:
 * `tsc -p .` into dist/), so benchmarks can measure production processes instead of the tsx
 * development loader, which alone adds ~40 MiB of RSS and seconds of start-up per process.
 */
import { execFileSync } from "node:child_process";
import { join } from "node:path";

const ROOT = join(__dirname, "../..");

/** Compiles the repository into `dist/` (gitignored) once per call and returns dist's path. */
export function buildDist(): string {
  const out = join(ROOT, "dist");
  execFileSync(process.execPath, [join(ROOT, "node_modules/typescript/bin/tsc"), "-p", ROOT, "--outDir", out], { stdio: "inherit" });
  return out;
}
