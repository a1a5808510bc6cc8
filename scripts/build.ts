/**
 * Bundles every service (services/<name>/main.ts) and the gateway into one JavaScript file each
 * with esbuild: `<outdir>/<name>.js` (default outdir dist/bundle), a small loader, and the bundled
 * code `<name>.code.js` it runs. The container image and the idle-RSS bench run these files. One
 * file instead of ~950 CommonJS modules (an idle inventory's require cache) saves per-module
 * wrappers, exports objects and resolution caches: 4–7 MiB of idle RSS per service (README,
 * "Benchmarks").
 *
 *   npm run build                       (dist/bundle)
 *   npm run build -- --outdir DIR --sourcemap
 *
 * Packages in {@link EXTERNAL} stay `require()`s of node_modules: the native better-sqlite3, and
 * what the code loads lazily only when configured (pg for a postgres:// database URL, the OTLP
 * exporters, the B3 propagator), so a service that does not use them never loads their code. The
 * build also writes `<outdir>/runtime-modules.txt`: the node_modules folders the bundles may load
 * at run time (those packages and their dependencies, from package-lock.json), which is all the
 * image ships of node_modules.
 *
 * Type errors do not stop esbuild (it strips types): run `tsc --noEmit` as well.
 */
import { build, type Metafile, type Plugin } from "esbuild";
import { copyFileSync, existsSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { isBuiltin } from "node:module";
import { join, resolve } from "node:path";
import { parseArgs } from "node:util";

const ROOT = resolve(__dirname, "..");

/** Default output folder (gitignored with the rest of dist/). */
export const DEFAULT_BUNDLE_DIR = join(ROOT, "dist", "bundle");

/**
 * Packages the bundles leave to node_modules. better-sqlite3 is native (a .node file and a path
 * lookup for it); the others are `require()`d inside functions only when the configuration asks
 * for them (mesh/db/database.ts, mesh/telemetry/telemetry.ts).
 */
export const EXTERNAL = [
  "better-sqlite3",
  "pg",
  "@opentelemetry/exporter-trace-otlp-grpc",
  "@opentelemetry/exporter-trace-otlp-http",
  "@opentelemetry/exporter-trace-otlp-proto",
  "@opentelemetry/exporter-metrics-otlp-grpc",
  "@opentelemetry/exporter-metrics-otlp-http",
  "@opentelemetry/exporter-metrics-otlp-proto",
  "@opentelemetry/propagator-b3",
];

/** What runs in the image: the gateway and every folder of services/ with a main.ts. */
export function bundleEntries(root = ROOT): Record<string, string> {
  const out: Record<string, string> = { gateway: join(root, "gateway", "main.ts") };
  for (const name of readdirSync(join(root, "services")).sort()) {
    const main = join(root, "services", name, "main.ts");
    if (existsSync(main)) out[name] = main;
  }
  return out;
}

// etcd3 loads its gRPC definitions at require time from `${__dirname}/../proto/rpc.proto`; in a
// bundle __dirname is the bundle's folder, so the build copies the .proto files beside the bundles
// and points the path there.
const ETCD3_PROTO_DIR = "etcd3-proto";
const ETCD3_PROTO_EXPR = "`${__dirname}/../proto/rpc.proto`";
const etcd3Protos: Plugin = {
  name: "etcd3-protos",
  setup(b) {
    b.onLoad({ filter: /[\\/]etcd3[\\/]lib[\\/]connection-pool\.js$/ }, (args) => {
      const src = readFileSync(args.path, "utf8");
      // A new etcd3 version that loads its protos differently must fail the build, not the service.
      if (!src.includes(ETCD3_PROTO_EXPR)) throw new Error(`${args.path} no longer loads ${ETCD3_PROTO_EXPR}: update scripts/build.ts`);
      return { contents: src.replace(ETCD3_PROTO_EXPR, `require("node:path").join(__dirname, ${JSON.stringify(ETCD3_PROTO_DIR)}, "rpc.proto")`), loader: "js" };
    });
  },
};

/** Options of {@link buildBundles}. */
export interface BuildOptions {
  /** Default {@link DEFAULT_BUNDLE_DIR}; emptied first. */
  outDir?: string;
  /** Writes `<name>.js.map` beside each bundle (run node with --enable-source-maps to use them). */
  sourcemap?: boolean;
  /** Subset of {@link bundleEntries} by name (tests build one service). */
  only?: string[];
}

/** What {@link buildBundles} wrote. */
export interface BuildResult {
  outDir: string;
  /** Absolute path of each bundle by entry name ("catalog", "gateway"). */
  bundles: Record<string, string>;
  /** node_modules folders (relative to the root) the bundles may load at run time. */
  runtimeModules: string[];
}

/** Bundles the entries into `outDir` and writes runtime-modules.txt there. */
export async function buildBundles(opts: BuildOptions = {}): Promise<BuildResult> {
  const outDir = resolve(opts.outDir ?? DEFAULT_BUNDLE_DIR);
  const all = bundleEntries();
  const entries = opts.only ? Object.fromEntries(opts.only.map((n) => [n, all[n] ?? fail(`no entry '${n}' (known: ${Object.keys(all).join(", ")})`)])) : all;
  rmSync(outDir, { recursive: true, force: true });
  mkdirSync(join(outDir, ETCD3_PROTO_DIR), { recursive: true });
  const result = await build({
    entryPoints: Object.fromEntries(Object.entries(entries).map(([name, file]) => [`${name}${CODE_SUFFIX}`, file])),
    outdir: outDir,
    bundle: true,
    platform: "node",
    target: "node20",
    format: "cjs",
    external: EXTERNAL,
    plugins: [etcd3Protos],
    // Identifiers stay readable (stack traces name functions); whitespace and syntax minification
    // shrink the source text V8 keeps in memory for lazy compilation (2.1 instead of 2.7 MB).
    minifyWhitespace: true,
    minifySyntax: true,
    sourcemap: opts.sourcemap ? "linked" : false,
    legalComments: "linked",
    metafile: true,
    write: false,
    logLevel: "warning",
  });
  for (const f of result.outputFiles) writeFileSync(f.path, f.path.endsWith(".js") ? asciiOnly(f.text) : f.contents);
  for (const name of Object.keys(entries)) writeFileSync(join(outDir, `${name}.js`), bootstrap(`${name}${CODE_SUFFIX}.js`));
  const protoSrc = join(ROOT, "node_modules", "etcd3", "proto");
  for (const f of readdirSync(protoSrc).filter((f) => f.endsWith(".proto"))) copyFileSync(join(protoSrc, f), join(outDir, ETCD3_PROTO_DIR, f));
  const runtimeModules = moduleClosure(externalsUsed(result.metafile));
  writeFileSync(join(outDir, "runtime-modules.txt"), runtimeModules.join("\n") + "\n");
  return { outDir, bundles: Object.fromEntries(Object.keys(entries).map((n) => [n, join(outDir, `${n}.js`)])), runtimeModules };
}

// `<name>.js` is the small file node runs; the bundled code is `<name>.code.js` beside it.
const CODE_SUFFIX = ".code";

/**
 * Escapes every non-ASCII UTF-16 unit as \uXXXX. esbuild leaves some in regular expression
 * literals (fast-redact's /〇/); one such character makes V8 hold the whole 2 MB source as a
 * two-byte string, 2 MiB more per process. The escape means the same in string and regular
 * expression literals, identifiers and comments; only a template literal's raw text (String.raw)
 * would differ, and the bundles have none with non-ASCII text. (A source map's columns after an
 * escaped character on its line move by 5 per character; there is one such line.)
 */
function asciiOnly(js: string): string {
  return js.replace(/[^\x00-\x7f]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, "0")}`);
}

/**
 * The file node runs for one entry. Node's loader would read the 2 MB bundle into one malloc'd
 * buffer: once glibc frees a block that large it raises its mmap threshold to the block's size
 * and its trim threshold to twice that, for the life of the process, and idle services kept
 * ~4.5 MiB more heap. So the bundle is read into WebAssembly memory (mapped by V8, not malloc)
 * inside a function whose frame is gone before the bundle runs, so the first scavenge unmaps it;
 * latin1 decoding is exact because {@link asciiOnly} made the bundle ASCII, and node keeps a
 * string that large outside V8's heap. Without WebAssembly (node --jitless) it falls back to a
 * plain read. `Module.prototype._compile` (what ts-node and @babel/register use; "commonjs" skips
 * node 22's ES module detection) gives the bundle require(), __dirname and --enable-source-maps as
 * for any module.
 */
function bootstrap(codeFile: string): string {
  return `"use strict";
// Generated by scripts/build.ts: runs ./${codeFile} (why it is not a plain require: bootstrap() there).
const { closeSync, fstatSync, openSync, readFileSync, readSync } = require("node:fs");
const Module = require("node:module");
const { join } = require("node:path");
function readAscii(file) {
  if (typeof WebAssembly !== "object") return readFileSync(file, "latin1");
  const fd = openSync(file, "r");
  try {
    const size = fstatSync(fd).size;
    const bytes = Buffer.from(new WebAssembly.Memory({ initial: Math.ceil(size / 65536) || 1 }).buffer, 0, size);
    let read = 0;
    for (let n; read < size && (n = readSync(fd, bytes, read, size - read, read)) > 0; ) read += n;
    return bytes.latin1Slice(0, read);
  } finally {
    closeSync(fd);
  }
}
const file = join(__dirname, ${JSON.stringify(codeFile)});
const bundle = new Module(file, module);
bundle.filename = file;
bundle.paths = Module._nodeModulePaths(__dirname);
bundle._compile(readAscii(file), file, "commonjs");
bundle.loaded = true;
`;
}

function fail(message: string): never {
  throw new Error(message);
}

/** Package names the bundles `require()` from node_modules. */
function externalsUsed(meta: Metafile): string[] {
  const names = new Set<string>();
  for (const out of Object.values(meta.outputs)) {
    for (const imp of out.imports) {
      if (!imp.external || imp.path.startsWith("node:") || !/^[@a-z]/.test(imp.path)) continue;
      const parts = imp.path.split("/");
      const name = imp.path.startsWith("@") ? parts.slice(0, 2).join("/") : parts[0];
      // Node's built-ins without the node: prefix (esbuild keeps "fs", "path" external on platform node).
      if (!isBuiltin(name)) names.add(name);
    }
  }
  return [...names].sort();
}

/**
 * The node_modules folders `names` need, by package-lock.json (what `npm ci` installs): each
 * package and, recursively, its dependencies as node resolves them (nearest node_modules upwards).
 * Folders inside another listed folder are left out (copying the outer one copies them).
 */
function moduleClosure(names: string[]): string[] {
  const lock = JSON.parse(readFileSync(join(ROOT, "package-lock.json"), "utf8")) as {
    packages: Record<string, { dependencies?: Record<string, string>; optionalDependencies?: Record<string, string>; peerDependencies?: Record<string, string>; dev?: boolean }>;
  };
  const resolveFrom = (from: string, name: string): string | undefined => {
    let dir = from;
    for (;;) {
      const candidate = `${dir ? `${dir}/` : ""}node_modules/${name}`;
      if (lock.packages[candidate]) return candidate;
      if (!dir) return undefined;
      const i = dir.lastIndexOf("/node_modules/");
      dir = i < 0 ? "" : dir.slice(0, i);
    }
  };
  const seen = new Set<string>();
  const stack = names.map((n) => resolveFrom("", n) ?? fail(`external package ${n} is not in package-lock.json`));
  while (stack.length > 0) {
    const path = stack.pop()!;
    if (seen.has(path)) continue;
    const pkg = lock.packages[path];
    if (pkg.dev) throw new Error(`${path} is a devDependency in package-lock.json but the bundles load it at run time`);
    seen.add(path);
    // Peer dependencies count when installed (npm 7+ installs them); optional ones may be absent.
    for (const dep of Object.keys({ ...pkg.dependencies, ...pkg.optionalDependencies, ...pkg.peerDependencies })) {
      const found = resolveFrom(path, dep);
      if (found && !lock.packages[found].dev) stack.push(found);
    }
  }
  const sorted = [...seen].sort();
  return sorted.filter((p) => !sorted.some((q) => q !== p && p.startsWith(`${q}/`)));
}

if (require.main === module) {
  const { values } = parseArgs({ options: { outdir: { type: "string" }, sourcemap: { type: "boolean", default: false } } });
  const t0 = performance.now();
  buildBundles({ outDir: values.outdir, sourcemap: values.sourcemap }).then(
    (r) => {
      process.stdout.write(`bundled ${Object.keys(r.bundles).join(", ")} into ${r.outDir} in ${(performance.now() - t0).toFixed(0)} ms; runtime node_modules: ${r.runtimeModules.length} folders (runtime-modules.txt)\n`);
    },
    (e: unknown) => {
      process.stderr.write(`build failed: ${e instanceof Error ? e.message : String(e)}\n`);
      process.exit(1);
    },
  );
}
