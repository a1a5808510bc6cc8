/**
 * Checks deploy/ against itself, the Kubernetes schemas and the code it deploys: the kustomize
 * overlays build and validate; every env variable a manifest sets is one the code reads, and each
 * workload's own config parser accepts the environment it gets; probes, ports, NetworkPolicies,
 * disruption budgets, security settings and termination grace agree with the runtime; the image's
 * entrypoint starts the bundle scripts/build.ts writes; compose runs the same image with the same names; the
 * PostgreSQL init SQL, nats.conf and the compose health check work against real servers.
 */
import { execFile, execFileSync } from "node:child_process";
import { chmodSync, copyFileSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, realpathSync, rmSync, statSync, writeFileSync } from "node:fs";
import { createServer, type Server as HttpServer } from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { dirname, join, relative, resolve } from "node:path";
import { promisify } from "node:util";
import { Client as PgClient } from "pg";
import { parse, parseAllDocuments } from "yaml";
import { findBinary, freePort, NODE_FLAGS_FILE, serviceNodeFlags, startProcess, TEST_PG_ADMIN_URL, waitFor, type ManagedProcess } from "../mesh/infra/index.js";
import type { RuntimeConfig } from "../mesh/runtime/config.js";
import { createMeshServer, DEFAULT_CONVERGENCE_DELAY_MS, DEFAULT_DRAIN_GRACE_MS, DEFAULT_HOOK_TIMEOUT_MS, type MeshServer } from "../mesh/server/index.js";
import { bundleEntries } from "../scripts/build.js";

const ROOT = resolve(__dirname, "..");
const DEPLOY = __dirname;
const IMAGE = "ghcr.io/meshwork/meshwork";
const OVERLAYS = ["dev", "production"] as const;
// Stands in for status.podIP when resolving env.
const POD_IP = "10.1.2.3";
// What a service's shutdown hooks (relay, consumers, NATS drain, database close) may take beyond
// the mesh drain itself: generous, they normally take well under a second.
const SHUTDOWN_HOOKS_MARGIN_MS = 5_000;
// PostgreSQL's default superuser_reserved_connections.
const PG_RESERVED_CONNECTIONS = 3;

// ---------------------------------------------------------------------------------------------
// Helpers: objects, label selectors, env resolution
// ---------------------------------------------------------------------------------------------

/** A Kubernetes object as parsed from YAML (specs stay loosely typed: the schemas check them). */
interface K8s {
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace?: string; labels?: Record<string, string>; annotations?: Record<string, string> };
  spec?: any;
  data?: Record<string, string>;
  stringData?: Record<string, string>;
}
type Container = any;
type Selector = { matchLabels?: Record<string, string>; matchExpressions?: { key: string; operator: string; values?: string[] }[] };

/** A Deployment or StatefulSet with what the checks need. */
interface Workload {
  obj: K8s;
  name: string;
  podLabels: Record<string, string>;
  pod: any;
  containers: Container[];
}

/** A built overlay. */
interface Build {
  overlay: string;
  docs: K8s[];
  workloads: Workload[];
  of(kind: string): K8s[];
  get(kind: string, name: string): K8s;
}

function kustomize(overlay: string): Build {
  const dir = join(DEPLOY, "k8s", "overlays", overlay);
  let out: string;
  try {
    out = execFileSync("kubectl", ["kustomize", dir], { encoding: "utf8", stdio: ["ignore", "pipe", "pipe"] });
  } catch (e) {
    const err = e as NodeJS.ErrnoException & { stderr?: string };
    if (err.code === "ENOENT") {
      throw new Error(
        "kubectl not found on PATH: deploy/deploy.test.ts builds the overlays with `kubectl kustomize` (kustomize v5 is built in). " +
          "Install kubectl 1.27 or newer: https://kubernetes.io/docs/tasks/tools/install-kubectl-linux/ (or `apt-get install kubectl` from the pkgs.k8s.io repository).",
      );
    }
    throw new Error(`kubectl kustomize ${relative(ROOT, dir)} failed: ${err.stderr ?? err.message}`);
  }
  const docs = parseAllDocuments(out).map((d) => {
    if (d.errors.length > 0) throw new Error(`kustomize output does not parse: ${d.errors[0].message}`);
    return d.toJS() as K8s;
  });
  const workloads = docs
    .filter((d) => d.kind === "Deployment" || d.kind === "StatefulSet")
    .map((obj) => ({ obj, name: obj.metadata.name, podLabels: obj.spec.template.metadata.labels ?? {}, pod: obj.spec.template.spec, containers: obj.spec.template.spec.containers }));
  return {
    overlay,
    docs,
    workloads,
    of: (kind) => docs.filter((d) => d.kind === kind),
    get(kind, name) {
      const found = docs.find((d) => d.kind === kind && d.metadata.name === name);
      if (!found) throw new Error(`${overlay}: no ${kind} ${name}`);
      return found;
    },
  };
}

function matches(selector: Selector | undefined, labels: Record<string, string>): boolean {
  if (!selector) return false;
  for (const [k, v] of Object.entries(selector.matchLabels ?? {})) if (labels[k] !== v) return false;
  for (const e of selector.matchExpressions ?? []) {
    const has = Object.prototype.hasOwnProperty.call(labels, e.key);
    if (e.operator === "In" && !(has && e.values!.includes(labels[e.key]))) return false;
    if (e.operator === "NotIn" && has && e.values!.includes(labels[e.key])) return false;
    if (e.operator === "Exists" && !has) return false;
    if (e.operator === "DoesNotExist" && has) return false;
  }
  return true;
}

/** Workloads whose pods a Service selector (plain labels) picks. */
function selectedByService(b: Build, svc: K8s): Workload[] {
  return b.workloads.filter((w) => matches({ matchLabels: svc.spec.selector }, w.podLabels));
}

/** Decoded data of the Secret `name`; `generated` also finds a generator's hashed name ("catalog-db-6785t5m44b"). */
function secretData(b: Build, name: string, generated = false): Record<string, string> | undefined {
  const s = b.of("Secret").find((x) => x.metadata.name === name || (generated && new RegExp(`^${name}-[a-z0-9]{10}$`).test(x.metadata.name)));
  if (!s) return undefined;
  const out: Record<string, string> = { ...(s.stringData ?? {}) };
  for (const [k, v] of Object.entries(s.data ?? {})) out[k] = Buffer.from(v, "base64").toString("utf8");
  return out;
}

/**
 * The environment a container gets: envFrom, then env (later wins), with valueFrom resolved from
 * the build's ConfigMaps and Secrets. `secrets` resolves Secrets the build does not contain (the
 * production overlay expects them to exist in the cluster).
 */
function resolveEnv(b: Build, w: Workload, c: Container, secrets: (name: string) => Record<string, string> | undefined): Record<string, string> {
  const configMap = (name: string) => {
    const cm = b.of("ConfigMap").find((x) => x.metadata.name === name);
    if (!cm) throw new Error(`${w.name}: ConfigMap ${name} is not in the build`);
    return cm.data ?? {};
  };
  const secret = (name: string) => {
    const s = secretData(b, name) ?? secrets(name);
    if (!s) throw new Error(`${w.name}: Secret ${name} is neither in the build nor generated by the dev overlay`);
    return s;
  };
  const env: Record<string, string> = {};
  for (const from of c.envFrom ?? []) {
    const data = from.configMapRef ? configMap(from.configMapRef.name) : secret(from.secretRef.name);
    for (const [k, v] of Object.entries(data)) env[`${from.prefix ?? ""}${k}`] = v;
  }
  for (const e of c.env ?? []) {
    if (e.value !== undefined) env[e.name] = String(e.value);
    else if (e.valueFrom?.fieldRef) {
      const path = e.valueFrom.fieldRef.fieldPath as string;
      const fields: Record<string, string> = { "status.podIP": POD_IP, "metadata.name": `${w.name}-0`, "metadata.namespace": w.obj.metadata.namespace ?? "default" };
      if (!(path in fields)) throw new Error(`${w.name}: env ${e.name} uses fieldRef ${path}, which this test cannot resolve`);
      env[e.name] = fields[path];
    } else if (e.valueFrom?.configMapKeyRef) {
      const v = configMap(e.valueFrom.configMapKeyRef.name)[e.valueFrom.configMapKeyRef.key];
      if (v === undefined) throw new Error(`${w.name}: env ${e.name} names missing key ${e.valueFrom.configMapKeyRef.key}`);
      env[e.name] = v;
    } else if (e.valueFrom?.secretKeyRef) {
      const v = secret(e.valueFrom.secretKeyRef.name)[e.valueFrom.secretKeyRef.key];
      if (v === undefined) throw new Error(`${w.name}: env ${e.name} names missing key ${e.valueFrom.secretKeyRef.key} of Secret ${e.valueFrom.secretKeyRef.name}`);
      env[e.name] = v;
    } else {
      throw new Error(`${w.name}: env ${e.name} has no value this test understands`);
    }
  }
  return env;
}

/** Resolves a container port given by number or by name. */
function portNumber(containers: Container[], port: number | string): number | undefined {
  if (typeof port === "number") return port;
  for (const c of containers) for (const p of c.ports ?? []) if (p.name === port) return p.containerPort;
  return undefined;
}

// ---------------------------------------------------------------------------------------------
// Helpers: the code side (entries, import closures, env names read)
// ---------------------------------------------------------------------------------------------

/** A process the image can run: the gateway or a service. */
interface Entry {
  name: string;
  /** Folder relative to ROOT that holds main.ts and config.ts. */
  dir: string;
  main: string;
}

function entries(): Entry[] {
  const services = readdirSync(join(ROOT, "services"))
    .filter((n) => existsSync(join(ROOT, "services", n, "main.ts")))
    .map((n) => ({ name: n, dir: `services/${n}`, main: `services/${n}/main.ts` }));
  return [...services, { name: "gateway", dir: "gateway", main: "gateway/main.ts" }];
}

/** The .ts files (absolute paths) that `file` (absolute) imports by relative path. */
function relativeImports(file: string): string[] {
  const src = readFileSync(file, "utf8");
  return [...src.matchAll(/(?:\bfrom|\bimport|\brequire\()\s*\(?\s*["'](\.{1,2}\/[^"']+)["']/g)].map((m) => {
    const base = resolve(dirname(file), m[1]).replace(/\.js$/, "");
    const target = [`${base}.ts`, join(base, "index.ts")].find((p) => existsSync(p));
    if (!target) throw new Error(`${relative(ROOT, file)} imports ${m[1]}, which does not exist`);
    return target;
  });
}

const closures = new Map<string, string[]>();
/** Every .ts file (relative to ROOT) reachable from `file` through relative imports. */
function importClosure(file: string): string[] {
  const cached = closures.get(file);
  if (cached) return cached;
  const seen = new Set<string>();
  const stack = [join(ROOT, file)];
  while (stack.length > 0) {
    const f = stack.pop()!;
    if (seen.has(f)) continue;
    seen.add(f);
    stack.push(...relativeImports(f));
  }
  const out = [...seen].map((f) => relative(ROOT, f)).sort();
  closures.set(file, out);
  return out;
}

/**
 * Env variable names a file reads: `process.env.X`, `env.X`, `env["X"]`, and every string or
 * template literal that is a whole upper-case name with an underscore (how the config helpers
 * receive them: envInt(env, "X", ...), str("X"), `OTEL_${signal}_EXPORTER`). Template holes become
 * wildcards.
 */
function envReadsOf(files: string[]): RegExp[] {
  const out: RegExp[] = [];
  const add = (name: string) => {
    const pattern = name
      .split(/\$\{[^}]*\}/)
      .map((part) => part.replace(/[.*+?^${}()|[\]\\]/g, "\\$&"))
      .join("[A-Z0-9_]+");
    out.push(new RegExp(`^${pattern}$`));
  };
  const NAME = String.raw`[A-Z][A-Z0-9]*_[A-Z0-9_]*(?:\$\{[^}]+\}[A-Z0-9_]*)*`;
  for (const f of files) {
    const src = readFileSync(join(ROOT, f), "utf8");
    for (const m of src.matchAll(/\benv\.([A-Z][A-Z0-9_]*)/g)) add(m[1]);
    for (const m of src.matchAll(new RegExp(`["'\`](${NAME})["'\`]`, "g"))) add(m[1]);
  }
  return out;
}

/** Names every process may be given: mesh/telemetry reads them (OTEL_*, MESHWORK_METRICS_PORT, LOG_LEVEL). */
function telemetryFiles(): string[] {
  return readdirSync(join(ROOT, "mesh", "telemetry"))
    .filter((f) => f.endsWith(".ts") && !f.endsWith(".test.ts"))
    .map((f) => `mesh/telemetry/${f}`);
}

function readsOf(entry: Entry): RegExp[] {
  // The telemetry runtime is part of every process by design (mesh/telemetry/README.md, "Wiring"),
  // so its variables count as read even where a main.ts does not start it yet.
  return envReadsOf([...importClosure(entry.main), ...telemetryFiles()]);
}

function loadConfigOf(entry: Entry): (env: NodeJS.ProcessEnv) => unknown {
  const mod = require(join(ROOT, entry.dir, "config")) as { loadConfig?: (env: NodeJS.ProcessEnv) => unknown };
  if (typeof mod.loadConfig !== "function") throw new Error(`${entry.dir}/config.ts exports no loadConfig(env)`);
  return mod.loadConfig;
}

/** Logical services a service calls through `mesh.client(XService)`, from its import closure. */
function callees(entry: Entry): string[] {
  const out = new Set<string>();
  for (const f of importClosure(entry.main)) {
    const src = readFileSync(join(ROOT, f), "utf8");
    for (const m of src.matchAll(/\.client\(\s*(\w+Service)\b/g)) {
      const imp = new RegExp(`import\\s*{[^}]*\\b${m[1]}\\b[^}]*}\\s*from\\s*["'][./]*gen/(\\w+)/`).exec(src);
      if (!imp) throw new Error(`${f}: cannot tell which package ${m[1]} comes from`);
      if (imp[1] !== entry.name) out.add(imp[1]);
    }
  }
  return [...out].sort();
}

// ---------------------------------------------------------------------------------------------
// Helpers: image files
// ---------------------------------------------------------------------------------------------

interface DockerStage {
  from: string;
  name?: string;
  lines: string[];
}

function dockerStages(): DockerStage[] {
  const text = readFileSync(join(DEPLOY, "Dockerfile"), "utf8").replace(/\\\n/g, " ");
  const stages: DockerStage[] = [];
  for (const raw of text.split("\n")) {
    const line = raw.trim().replace(/\s+/g, " ");
    if (!line || line.startsWith("#")) continue;
    const from = /^FROM (\S+)(?: AS (\S+))?$/i.exec(line);
    if (from) stages.push({ from: from[1], name: from[2], lines: [] });
    else stages.at(-1)!.lines.push(line);
  }
  return stages;
}

/** True when the build context keeps `path` (relative to ROOT) under deploy/Dockerfile.dockerignore. */
function inBuildContext(path: string): boolean {
  const rules = readFileSync(join(DEPLOY, "Dockerfile.dockerignore"), "utf8")
    .split("\n")
    .map((l) => l.trim())
    .filter((l) => l && !l.startsWith("#"))
    .map((l) => {
      const negate = l.startsWith("!");
      const glob = (negate ? l.slice(1) : l).replace(/\/+$/, "");
      const re = glob
        .split("/")
        .map((seg) => (seg === "**" ? ".*" : seg.replace(/[.+^${}()|[\]\\]/g, "\\$&").replace(/\*/g, "[^/]*").replace(/\?/g, "[^/]")))
        .join("/")
        .replace(/\.\*\//g, "(?:.*/)?");
      return { negate, re: new RegExp(`^${re}$`) };
    });
  // As Docker does: a rule matches the path or any of its parent folders; the last match wins.
  const parts = path.split("/");
  const prefixes = parts.map((_, i) => parts.slice(0, i + 1).join("/"));
  let kept = true;
  for (const r of rules) if (prefixes.some((p) => r.re.test(p))) kept = r.negate;
  return kept;
}

const execFileAsync = promisify(execFile);
async function exitCode(cmd: string, args: string[], opts: { env?: NodeJS.ProcessEnv; cwd?: string } = {}): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const { stdout, stderr } = await execFileAsync(cmd, args, { ...opts, encoding: "utf8" });
    return { code: 0, stdout, stderr };
  } catch (e) {
    const err = e as { code?: number | string; stdout?: string; stderr?: string; message: string };
    // A string code (ENOENT, EAGAIN) means the process never ran: that is not an exit code.
    if (typeof err.code !== "number") throw new Error(`could not run ${cmd}: ${err.message}`);
    return { code: err.code, stdout: err.stdout ?? "", stderr: err.stderr ?? "" };
  }
}

// ---------------------------------------------------------------------------------------------
// Kubernetes
// ---------------------------------------------------------------------------------------------

const ENTRIES = entries();
const builds: Record<string, Build> = {};
/** The dev overlay's Secrets by base name: the set production must provide, with the same keys. */
let devSecrets: (name: string) => Record<string, string> | undefined;

beforeAll(() => {
  for (const o of OVERLAYS) builds[o] = kustomize(o);
  devSecrets = (name) => secretData(builds.dev, name, true);
});

/** What follows the repository in a Meshwork image (":0.1.0", "@sha256:..."), or undefined for other images. */
function imageRef(c: Container): string | undefined {
  const image = String(c.image);
  return image === IMAGE || /^[:@]/.test(image.slice(IMAGE.length)) ? image.slice(IMAGE.length) : undefined;
}

/**
 * Secrets a build expects to exist in the cluster: none when it generates Secrets itself (every
 * reference must then resolve inside the build), else the dev overlay's, by name.
 */
function externalSecrets(b: Build): (name: string) => Record<string, string> | undefined {
  return b.of("Secret").length > 0 ? () => undefined : devSecrets;
}

/** The Meshwork containers of a build, with the entry each runs. */
function meshworkContainers(b: Build): { w: Workload; c: Container; entry: Entry; env: Record<string, string> }[] {
  const out: { w: Workload; c: Container; entry: Entry; env: Record<string, string> }[] = [];
  for (const w of b.workloads) {
    for (const c of w.containers) {
      if (imageRef(c) === undefined) continue;
      const name = c.args?.[0] ?? c.command?.[0];
      const entry = ENTRIES.find((e) => e.name === name);
      if (!entry) throw new Error(`${b.overlay}: ${w.name} runs '${name}', which is neither gateway nor services/<name>/main.ts`);
      out.push({ w, c, entry, env: resolveEnv(b, w, c, externalSecrets(b)) });
    }
  }
  return out;
}

describe.each(OVERLAYS)("kustomize overlay %s", (overlay) => {
  const b = () => builds[overlay];

  test("every object validates against its Kubernetes schema (kubernetes-models)", () => {
    const kinds = new Set<string>();
    for (const doc of b().docs) {
      const module = `kubernetes-models/${doc.apiVersion.includes("/") ? doc.apiVersion : "v1"}`;
      let Model: (new (data: unknown) => { validate(): void }) | undefined;
      try {
        Model = (require(module) as Record<string, new (data: unknown) => { validate(): void }>)[doc.kind];
      } catch {
        Model = undefined;
      }
      if (!Model) throw new Error(`${overlay}: no schema for ${doc.apiVersion} ${doc.kind} (${doc.metadata.name}) in kubernetes-models`);
      // kustomize wraps long base64 values over lines; the API server's decoder skips line breaks,
      // the schema's "byte" format does not.
      const data = doc.kind === "Secret" && doc.data ? Object.fromEntries(Object.entries(doc.data).map(([k, v]) => [k, v.replace(/\s+/g, "")])) : doc.data;
      try {
        new Model({ ...doc, data }).validate();
      } catch (e) {
        throw new Error(`${overlay}: ${doc.kind} ${doc.metadata.name} is invalid: ${(e as Error).message}`);
      }
      kinds.add(doc.kind);
    }
    expect([...kinds].sort()).toEqual(expect.arrayContaining(["ConfigMap", "Deployment", "Ingress", "NetworkPolicy", "PodDisruptionBudget", "Service", "StatefulSet"]));
  });

  test("every namespaced object lands in the namespace the build creates", () => {
    const namespaces = b().of("Namespace").map((n) => n.metadata.name);
    expect(namespaces).toEqual(["meshwork"]);
    for (const d of b().docs.filter((x) => x.kind !== "Namespace")) expect({ object: `${d.kind}/${d.metadata.name}`, namespace: d.metadata.namespace }).toEqual({ object: `${d.kind}/${d.metadata.name}`, namespace: "meshwork" });
  });

  test("every gateway and service entry point is deployed, once, from the one image with a pinned tag", () => {
    const deployed = meshworkContainers(b());
    expect(deployed.map((d) => d.entry.name).sort()).toEqual(ENTRIES.map((e) => e.name).sort());
    for (const { w, c, entry } of deployed) {
      expect(w.obj.kind).toBe("Deployment");
      expect(w.name).toBe(entry.name);
      const ref = imageRef(c);
      expect(ref).not.toBe("");
      expect(ref).not.toBe(":latest");
      if (overlay === "production") expect(ref).toMatch(/^(:\d+\.\d+\.\d+|@sha256:[0-9a-f]{64})$/);
    }
  });

  test("every env variable set is one the workload's code reads, and its config parser accepts the environment", () => {
    for (const { w, entry, env } of meshworkContainers(b())) {
      const reads = readsOf(entry);
      const unread = Object.keys(env).filter((name) => !reads.some((r) => r.test(name)));
      expect({ workload: w.name, unread }).toEqual({ workload: w.name, unread: [] });
      // The workload's own loadConfig: required variables present, values in range and well formed.
      expect(() => loadConfigOf(entry)(env)).not.toThrow();
    }
  });

  test("services listen on the pod IP at the probed port, register it, and use PostgreSQL, etcd and NATS in the cluster", () => {
    for (const { w, c, entry, env } of meshworkContainers(b())) {
      if (entry.name === "gateway") {
        const cfg = loadConfigOf(entry)(env) as { port: number; host: string };
        expect(cfg.host).toBe("0.0.0.0");
        expect(portNumber([c], "http")).toBe(cfg.port);
        expect(env.ETCD_ENDPOINTS).toBeDefined();
        continue;
      }
      const { runtime } = loadConfigOf(entry)(env) as { runtime: RuntimeConfig };
      expect(runtime.host).toBe("0.0.0.0");
      expect(runtime.advertiseHost).toBe(POD_IP);
      expect(portNumber([c], "grpc")).toBe(runtime.port);
      expect(runtime.etcdEndpoints.every((u) => !/127\.0\.0\.1|localhost/.test(u))).toBe(true);
      expect(runtime.natsUrl).toBeDefined();
      const db = new URL(runtime.databaseUrl);
      expect({ workload: w.name, protocol: db.protocol, user: db.username, database: db.pathname }).toEqual({ workload: w.name, protocol: "postgres:", user: entry.name, database: `/${entry.name}` });
    }
  });

  test("URLs in env point at Services of the build on ports they expose", () => {
    const envs = meshworkContainers(b()).map((m) => m.env);
    const urls = new Set<string>();
    for (const env of envs) {
      for (const u of (env.ETCD_ENDPOINTS ?? "").split(",").filter(Boolean)) urls.add(u);
      for (const key of ["NATS_URL", "OTEL_EXPORTER_OTLP_ENDPOINT", "MESHWORK_DATABASE_URL"]) if (env[key]) urls.add(env[key]);
    }
    expect(urls.size).toBeGreaterThan(3);
    for (const raw of urls) {
      const u = new URL(raw);
      const labels = u.hostname.split(".");
      // <service> or <pod>.<headless service> (StatefulSet pods).
      const svc = b().get("Service", labels.length === 1 ? labels[0] : labels[1]);
      const port = Number(u.port);
      const sp = (svc.spec.ports as { port: number; targetPort?: number | string }[]).find((p) => p.port === port);
      expect({ url: raw, servicePort: sp?.port }).toEqual({ url: raw, servicePort: port });
      const targets = selectedByService(b(), svc);
      expect(targets.length).toBe(1);
      expect(portNumber(targets[0].containers, sp!.targetPort ?? port)).toBe(port);
      if (labels.length > 1) {
        const sts = targets[0];
        expect(sts.obj.kind).toBe("StatefulSet");
        expect(sts.obj.spec.serviceName).toBe(svc.metadata.name);
        expect(svc.spec.clusterIP).toBe("None");
        const ordinal = Number(/-(\d+)$/.exec(labels[0])?.[1]);
        expect(labels[0]).toBe(`${sts.name}-${ordinal}`);
        expect(ordinal).toBeLessThan(sts.obj.spec.replicas);
      }
    }
  });

  test("probes: gRPC health on the container's gRPC port for services, /healthz for the gateway; liveness outlasts the drain", () => {
    for (const { w, c, entry } of meshworkContainers(b())) {
      const grace = w.pod.terminationGracePeriodSeconds as number;
      for (const kind of ["readinessProbe", "livenessProbe"]) expect({ w: w.name, kind, has: Boolean(c[kind]) }).toEqual({ w: w.name, kind, has: true });
      const probes = [c.startupProbe, c.readinessProbe, c.livenessProbe].filter(Boolean);
      for (const p of probes) {
        if (entry.name === "gateway") {
          expect(p.httpGet.path).toBe("/healthz");
          expect(portNumber([c], p.httpGet.port)).toBe(portNumber([c], "http"));
        } else {
          expect(p.grpc).toBeDefined();
          expect(p.grpc.port).toBe(portNumber([c], "grpc"));
          expect(p.grpc.service ?? "").toBe("");
        }
      }
      // A pod that fails liveness while draining would be killed (SIGKILL) before the drain ends.
      expect((c.livenessProbe.periodSeconds ?? 10) * (c.livenessProbe.failureThreshold ?? 3)).toBeGreaterThan(grace);
    }
  });

  test("termination grace covers the drain; only the gateway has a preStop sleep", () => {
    for (const { w, c, entry, env } of meshworkContainers(b())) {
      const graceMs = (w.pod.terminationGracePeriodSeconds ?? 30) * 1000;
      if (entry.name === "gateway") {
        const sleep = c.lifecycle?.preStop?.exec?.command;
        expect(sleep?.[0]).toBe("sleep");
        expect(Number(sleep[1]) * 1000).toBeLessThan(graceMs);
        continue;
      }
      expect(c.lifecycle?.preStop).toBeUndefined();
      const { runtime } = loadConfigOf(entry)(env) as { runtime: RuntimeConfig };
      // The larger of the configured and the server's default grace, whichever the service applies.
      const drainMs = Math.max(runtime.drainGraceMs, DEFAULT_DRAIN_GRACE_MS);
      expect(graceMs).toBeGreaterThanOrEqual(DEFAULT_HOOK_TIMEOUT_MS + DEFAULT_CONVERGENCE_DELAY_MS + drainMs + SHUTDOWN_HOOKS_MARGIN_MS);
    }
  });

  test("every Deployment has a PodDisruptionBudget and a Service, and every Service selects a workload", () => {
    for (const w of b().workloads.filter((x) => x.obj.kind === "Deployment")) {
      const pdbs = b().of("PodDisruptionBudget").filter((p) => matches(p.spec.selector, w.podLabels));
      expect({ w: w.name, pdbs: pdbs.length }).toEqual({ w: w.name, pdbs: 1 });
      // maxUnavailable, not minAvailable: a one-replica dev Deployment must not block node drains.
      expect(pdbs[0].spec.maxUnavailable).toBeGreaterThanOrEqual(1);
      const services = b().of("Service").filter((s) => selectedByService(b(), s).includes(w));
      expect({ w: w.name, hasService: services.length > 0 }).toEqual({ w: w.name, hasService: true });
    }
    for (const s of b().of("Service")) expect({ svc: s.metadata.name, workloads: selectedByService(b(), s).length }).toEqual({ svc: s.metadata.name, workloads: 1 });
  });

  test("the gateway is the only workload an Ingress points at", () => {
    const ingresses = b().of("Ingress");
    expect(ingresses.length).toBeGreaterThan(0);
    for (const ing of ingresses) {
      const backends = [ing.spec.defaultBackend, ...(ing.spec.rules ?? []).flatMap((r: { http?: { paths: { backend: unknown }[] } }) => (r.http?.paths ?? []).map((p) => p.backend))].filter(Boolean);
      expect(backends.length).toBeGreaterThan(0);
      for (const be of backends) {
        const svc = b().get("Service", be.service.name);
        expect(selectedByService(b(), svc).map((w) => w.name)).toEqual(["gateway"]);
        const sp = svc.spec.ports.find((p: { name?: string; port: number }) => (be.service.port.name ? p.name === be.service.port.name : p.port === be.service.port.number));
        expect(sp).toBeDefined();
      }
    }
  });

  test("NetworkPolicies: default deny for every pod, only the gateway open outside the namespace, callers and Service ports allowed", () => {
    const policies = b().of("NetworkPolicy");
    const denyAll = policies.find((p) => Object.keys(p.spec.podSelector ?? {}).length === 0 && p.spec.policyTypes?.includes("Ingress") && !(p.spec.ingress?.length > 0));
    expect(denyAll).toBeDefined();
    const rulesFor = (w: Workload) => policies.filter((p) => matches(p.spec.podSelector, w.podLabels)).flatMap((p) => p.spec.ingress ?? []);
    const allows = (w: Workload, port: number, from?: Workload) =>
      rulesFor(w).some((rule: { from?: { podSelector?: Selector; namespaceSelector?: unknown; ipBlock?: unknown }[]; ports?: { port?: number | string }[] }) => {
        const portOk = !rule.ports || rule.ports.length === 0 || rule.ports.some((p) => p.port === undefined || portNumber(w.containers, p.port) === port);
        const peerOk = !rule.from || rule.from.length === 0 || (from ? rule.from.some((peer) => !peer.namespaceSelector && !peer.ipBlock && matches(peer.podSelector, from.podLabels)) : false);
        return portOk && peerOk;
      });

    for (const p of policies) {
      for (const rule of p.spec.ingress ?? []) {
        const external = !rule.from || rule.from.length === 0 || rule.from.some((peer: { namespaceSelector?: unknown; ipBlock?: unknown }) => peer.namespaceSelector || peer.ipBlock);
        if (!external) continue;
        const exposed = b().workloads.filter((w) => matches(p.spec.podSelector, w.podLabels)).map((w) => w.name);
        expect({ policy: p.metadata.name, exposed }).toEqual({ policy: p.metadata.name, exposed: ["gateway"] });
      }
    }
    // Every port a Service forwards to is open to someone (else the Service is dead).
    for (const svc of b().of("Service")) {
      for (const w of selectedByService(b(), svc)) {
        for (const sp of svc.spec.ports) {
          const port = portNumber(w.containers, sp.targetPort ?? sp.port)!;
          const peers = [undefined, ...b().workloads];
          expect({ svc: svc.metadata.name, port, open: peers.some((peer) => allows(w, port, peer)) }).toEqual({ svc: svc.metadata.name, port, open: true });
        }
      }
    }
    const byName = (n: string) => b().workloads.find((w) => w.name === n)!;
    for (const entry of ENTRIES) {
      // The gateway fronts every service; services call what their code asks mesh.client for.
      const targets = entry.name === "gateway" ? ENTRIES.filter((e) => e.name !== "gateway").map((e) => e.name) : callees(entry);
      for (const t of targets) {
        const target = byName(t);
        expect({ from: entry.name, to: t, allowed: allows(target, portNumber(target.containers, "grpc")!, byName(entry.name)) }).toEqual({ from: entry.name, to: t, allowed: true });
      }
    }
    // ...and nothing else reaches a service's gRPC port.
    for (const entry of ENTRIES.filter((e) => e.name !== "gateway")) {
      const w = byName(entry.name);
      const callers = b()
        .workloads.filter((peer) => allows(w, portNumber(w.containers, "grpc")!, peer))
        .map((peer) => peer.name)
        .sort();
      const expected = ENTRIES.filter((e) => e.name === "gateway" || callees(e).includes(entry.name))
        .map((e) => e.name)
        .sort();
      expect({ service: entry.name, callers }).toEqual({ service: entry.name, callers: expected });
    }
  });

  test("every container runs non-root, read-only, without capabilities or privilege escalation, under seccomp", () => {
    for (const w of b().workloads) {
      expect({ w: w.name, automount: w.pod.automountServiceAccountToken }).toEqual({ w: w.name, automount: false });
      const pod = w.pod.securityContext ?? {};
      for (const c of [...(w.pod.initContainers ?? []), ...w.containers]) {
        const sc = c.securityContext ?? {};
        const effective = {
          runAsNonRoot: sc.runAsNonRoot ?? pod.runAsNonRoot,
          rootUser: (sc.runAsUser ?? pod.runAsUser) === 0,
          allowPrivilegeEscalation: sc.allowPrivilegeEscalation,
          readOnlyRootFilesystem: sc.readOnlyRootFilesystem,
          dropsAll: (sc.capabilities?.drop ?? []).includes("ALL"),
          adds: sc.capabilities?.add ?? [],
          seccomp: (sc.seccompProfile ?? pod.seccompProfile)?.type,
        };
        expect({ container: `${w.name}/${c.name}`, ...effective }).toEqual({
          container: `${w.name}/${c.name}`,
          runAsNonRoot: true,
          rootUser: false,
          allowPrivilegeEscalation: false,
          readOnlyRootFilesystem: true,
          dropsAll: true,
          adds: [],
          seccomp: "RuntimeDefault",
        });
        expect(c.resources?.requests?.cpu).toBeDefined();
        expect(c.resources?.requests?.memory).toBeDefined();
        expect(c.resources?.limits?.memory).toBeDefined();
      }
    }
  });

  test("Secrets: every reference names a Secret and key the dev overlay generates", () => {
    const refs: { name: string; key: string }[] = [];
    for (const w of b().workloads) {
      for (const c of w.containers) {
        for (const e of c.env ?? []) if (e.valueFrom?.secretKeyRef) refs.push(e.valueFrom.secretKeyRef);
        for (const f of c.envFrom ?? []) if (f.secretRef) refs.push({ name: f.secretRef.name, key: "" });
      }
    }
    expect(refs.length).toBeGreaterThan(0);
    for (const r of refs) {
      const base = r.name.replace(/-[a-z0-9]{10}$/, "");
      const data = devSecrets(base);
      expect({ ref: r, generated: Boolean(data && (r.key === "" || r.key in data)) }).toEqual({ ref: r, generated: true });
    }
    if (overlay === "production") expect(b().of("Secret")).toEqual([]);
  });

  test("PostgreSQL: one role and database per service from the init SQL, with the passwords of the services' URLs", () => {
    const pg = b().workloads.find((w) => w.name === "postgres")!;
    const pgEnv = resolveEnv(b(), pg, pg.containers[0], externalSecrets(b()));
    const initMap = b().of("ConfigMap").find((c) => c.metadata.name.startsWith("postgres-init"))!;
    const init = initMap.data!["init.sql"];
    const volume = pg.pod.volumes.find((v: { configMap?: { name: string } }) => v.configMap?.name === initMap.metadata.name);
    const mount = pg.containers[0].volumeMounts.find((m: { name: string }) => m.name === volume?.name);
    expect(mount?.mountPath).toBe("/docker-entrypoint-initdb.d");
    const getenv = new Map([...init.matchAll(/^\\getenv (\w+) (\w+)$/gm)].map((m) => [m[1], m[2]]));
    for (const { entry, env } of meshworkContainers(b()).filter((m) => m.entry.name !== "gateway")) {
      const url = new URL(env.MESHWORK_DATABASE_URL);
      const role = url.username;
      const created = new RegExp(`^CREATE ROLE ${role} LOGIN PASSWORD :'(\\w+)';$`, "m").exec(init);
      expect({ service: entry.name, role: Boolean(created) }).toEqual({ service: entry.name, role: true });
      expect(init).toMatch(new RegExp(`^CREATE DATABASE ${url.pathname.slice(1)} OWNER ${role};$`, "m"));
      expect(init).toMatch(new RegExp(`^REVOKE ALL ON DATABASE ${url.pathname.slice(1)} FROM PUBLIC;$`, "m"));
      const variable = getenv.get(created![1])!;
      expect(pgEnv[variable]).toBe(decodeURIComponent(url.password));
    }
  });

  test("PostgreSQL max_connections covers every replica's pool at the autoscaling maximum plus rollout surge", () => {
    const pool = Number(/const DEFAULT_POOL_SIZE = (\d+)/.exec(readFileSync(join(ROOT, "mesh", "db", "database.ts"), "utf8"))?.[1]);
    expect(pool).toBeGreaterThan(0);
    let needed = PG_RESERVED_CONNECTIONS;
    for (const { w, env } of meshworkContainers(b())) {
      if (!env.MESHWORK_DATABASE_URL?.startsWith("postgres")) continue;
      const hpa = b()
        .of("HorizontalPodAutoscaler")
        .find((h) => h.spec.scaleTargetRef.kind === "Deployment" && h.spec.scaleTargetRef.name === w.name);
      const surge = w.obj.spec.strategy?.rollingUpdate?.maxSurge ?? 1;
      expect(typeof surge).toBe("number");
      needed += (Math.max(w.obj.spec.replicas ?? 1, hpa?.spec.maxReplicas ?? 0) + surge) * pool;
    }
    const pg = b().workloads.find((w) => w.name === "postgres")!;
    const args: string[] = pg.containers[0].args ?? [];
    const max = Number(args.map((a) => /^max_connections=(\d+)$/.exec(a)?.[1]).find(Boolean) ?? 100);
    expect(max).toBeGreaterThanOrEqual(needed);
  });

  test("etcd: the StatefulSet's members are the --initial-cluster, and ETCD_ENDPOINTS lists every member", () => {
    const etcd = b().workloads.find((w) => w.name === "etcd")!;
    const args: string[] = etcd.containers[0].args;
    const flag = (name: string) => args.find((a) => a.startsWith(`--${name}=`))?.split("=").slice(1).join("=");
    const replicas: number = etcd.obj.spec.replicas;
    const svc: string = etcd.obj.spec.serviceName;
    const members = Array.from({ length: replicas }, (_, i) => `${etcd.name}-${i}`);
    expect(flag("initial-cluster")).toBe(members.map((m) => `${m}=http://${m}.${svc}:${portNumber(etcd.containers, "peer")}`).join(","));
    expect(flag("initial-advertise-peer-urls")).toBe(`http://$(POD_NAME).${svc}:${portNumber(etcd.containers, "peer")}`);
    expect(flag("advertise-client-urls")).toBe(`http://$(POD_NAME).${svc}:${portNumber(etcd.containers, "client")}`);
    expect(etcd.obj.spec.podManagementPolicy).toBe("Parallel");
    expect(b().get("Service", svc).spec.publishNotReadyAddresses).toBe(true);
    for (const { env } of meshworkContainers(b())) {
      expect(env.ETCD_ENDPOINTS.split(",")).toEqual(members.map((m) => `http://${m}.${svc}:${portNumber(etcd.containers, "client")}`));
    }
  });

  test("OpenTelemetry Collector: pipelines use defined components, and workloads send to its OTLP/HTTP receiver", () => {
    const cm = b().of("ConfigMap").find((c) => c.metadata.name.startsWith("otel-collector-config"))!;
    const cfg = parse(cm.data!["config.yaml"]) as Record<string, Record<string, unknown>> & { service: { extensions?: string[]; pipelines: Record<string, Record<string, string[]>> } };
    for (const [name, pipeline] of Object.entries(cfg.service.pipelines)) {
      for (const section of ["receivers", "processors", "exporters"]) {
        for (const component of pipeline[section] ?? []) expect({ pipeline: name, component, defined: component in (cfg[section] ?? {}) }).toEqual({ pipeline: name, component, defined: true });
      }
    }
    for (const ext of cfg.service.extensions ?? []) expect(ext in (cfg.extensions ?? {})).toBe(true);
    const httpPort = Number(/:(\d+)$/.exec((cfg.receivers as { otlp: { protocols: { http: { endpoint: string } } } }).otlp.protocols.http.endpoint)?.[1]);
    for (const { env } of meshworkContainers(b())) expect(Number(new URL(env.OTEL_EXPORTER_OTLP_ENDPOINT).port)).toBe(httpPort);
    const collector = b().workloads.find((w) => w.name === "otel-collector")!;
    const volume = collector.pod.volumes.find((v: { configMap?: { name: string } }) => v.configMap?.name === cm.metadata.name);
    const mount = collector.containers[0].volumeMounts.find((m: { name: string }) => m.name === volume?.name);
    expect(collector.containers[0].args).toContain(`--config=${mount.mountPath}/config.yaml`);
    const collectorSvc = b().get("Service", new URL(meshworkContainers(b())[0].env.OTEL_EXPORTER_OTLP_ENDPOINT).hostname);
    expect(selectedByService(b(), collectorSvc)).toEqual([collector]);
  });

  test("metrics: the scrape annotation names the port MESHWORK_METRICS_PORT opens", () => {
    for (const { w, c, env } of meshworkContainers(b())) {
      const port = Number(env.MESHWORK_METRICS_PORT);
      expect({ w: w.name, annotation: Number(w.obj.spec.template.metadata.annotations?.["prometheus.io/port"]) }).toEqual({ w: w.name, annotation: port });
      expect(portNumber([c], "metrics")).toBe(port);
    }
  });
});

test("overlays: dev runs one replica of each workload; production three, a release tag and MESHWORK_VERSION equal to it", () => {
  for (const { w } of meshworkContainers(builds.dev)) expect({ w: w.name, replicas: w.obj.spec.replicas }).toEqual({ w: w.name, replicas: 1 });
  for (const { w, c, env } of meshworkContainers(builds.production)) {
    expect({ w: w.name, replicas: w.obj.spec.replicas }).toEqual({ w: w.name, replicas: 3 });
    const tag = /^:(.+)$/.exec(imageRef(c)!)?.[1];
    if (env.MESHWORK_VERSION !== undefined && tag) expect(env.MESHWORK_VERSION).toBe(tag);
  }
  const versions = meshworkContainers(builds.production).filter((m) => m.entry.name !== "gateway").map((m) => m.env.MESHWORK_VERSION);
  expect(versions.every((v) => v !== undefined)).toBe(true);
});

// ---------------------------------------------------------------------------------------------
// The image: Dockerfile, entrypoint, health check
// ---------------------------------------------------------------------------------------------

describe("container image", () => {
  const stages = dockerStages();
  const runtime = stages.at(-1)!;
  const build = stages.find((s) => s.lines.includes("RUN npx tsx scripts/build.ts"))!;
  /** Top-level source folders the build stage copies (and so type-checks and bundles). */
  const compiledDirs = build.lines.map((l) => /^COPY (\w+) \.\/\1$/.exec(l)?.[1]).filter((d): d is string => Boolean(d));

  test("the Dockerfile copies only existing paths that the build context keeps", () => {
    for (const s of stages) {
      for (const line of s.lines.filter((l) => l.startsWith("COPY ") && !l.includes("--from="))) {
        const sources = line.split(" ").slice(1, -1).filter((t) => !t.startsWith("--"));
        for (const src of sources) {
          expect({ src, exists: existsSync(join(ROOT, src)) }).toEqual({ src, exists: true });
          expect({ src, inContext: inBuildContext(src) }).toEqual({ src, inContext: true });
        }
      }
    }
  });

  test("what the build stage compiles imports nothing the build context leaves out", () => {
    const files = (dir: string): string[] =>
      readdirSync(dir, { withFileTypes: true }).flatMap((d) => (d.isDirectory() ? files(join(dir, d.name)) : d.name.endsWith(".ts") && !d.name.endsWith(".test.ts") ? [join(dir, d.name)] : []));
    for (const f of compiledDirs.flatMap((d) => files(join(ROOT, d)))) {
      for (const target of relativeImports(f)) {
        const rel = relative(ROOT, target);
        expect({ file: relative(ROOT, f), imports: rel, available: compiledDirs.includes(rel.split("/")[0]) && inBuildContext(rel) }).toEqual({ file: relative(ROOT, f), imports: rel, available: true });
      }
    }
  });

  test("the build stage type-checks, then bundles every entry point from the files it copies; the runtime ships the bundles", () => {
    const check = build.lines.indexOf("RUN npx tsc -p . --noEmit");
    expect(check).toBeGreaterThan(-1);
    expect(check).toBeLessThan(build.lines.indexOf("RUN npx tsx scripts/build.ts"));
    expect(build.lines).toContain("COPY scripts/build.ts ./scripts/build.ts");
    // scripts/build.ts bundles exactly the entries the manifests deploy, one file each.
    expect(Object.keys(bundleEntries()).sort()).toEqual(ENTRIES.map((e) => e.name).sort());
    for (const e of ENTRIES) {
      for (const f of importClosure(e.main)) {
        expect({ file: f, copied: compiledDirs.includes(f.split("/")[0]), inContext: inBuildContext(f) }).toEqual({ file: f, copied: true, inContext: true });
      }
    }
    expect(runtime.lines).toContain(`COPY --from=${build.name} /src/dist/bundle ./dist/bundle`);
    expect(runtime.lines.filter((l) => l.includes(`--from=${build.name}`))).toEqual([`COPY --from=${build.name} /src/dist/bundle ./dist/bundle`]);
  });

  test("runtime: node:20-bookworm-slim, production dependencies only, uid 10001, /data volume, tini and the entrypoint", () => {
    expect(runtime.from).toBe("node:20-bookworm-slim");
    // node_modules: the production install, cut down to the folders the bundles require (scripts/build.ts lists them).
    const depsStage = /^COPY --from=(\S+) \/runtime\/node_modules \.\/node_modules$/.exec(runtime.lines.find((l) => l.includes("node_modules"))!)?.[1];
    const deps = stages.find((s) => s.name === depsStage)!.lines;
    expect(deps.indexOf("RUN npm ci --omit=dev --no-audit --no-fund")).toBeGreaterThan(-1);
    expect(deps.slice(deps.indexOf("RUN npm ci --omit=dev --no-audit --no-fund") + 1)).toEqual([
      `COPY --from=${build.name} /src/dist/bundle/runtime-modules.txt ./`,
      "RUN mkdir /runtime && xargs -a runtime-modules.txt cp -a --parents -t /runtime",
    ]);
    expect(runtime.lines).toContain("USER 10001:10001");
    expect(runtime.lines).toContain('VOLUME ["/data"]');
    const workdir = /^WORKDIR (\S+)$/.exec(runtime.lines.find((l) => l.startsWith("WORKDIR"))!)![1];
    expect(runtime.lines).toContain(`ENTRYPOINT ["/usr/bin/tini", "--", "${workdir}/deploy/entrypoint.sh"]`);
    expect(runtime.lines).toContain("COPY deploy/entrypoint.sh deploy/healthcheck.js deploy/node-flags ./deploy/");
    for (const f of ["deploy/entrypoint.sh", "deploy/healthcheck.js", "deploy/node-flags"]) expect({ f, inContext: inBuildContext(f) }).toEqual({ f, inContext: true });
    // Docker keeps the mode bits: the entrypoint must be executable in the repository.
    expect(statSync(join(DEPLOY, "entrypoint.sh")).mode & 0o111).toBe(0o111);
  });

  describe("entrypoint.sh", () => {
    let dir: string;
    let app: string;
    const emitted = new Map<string, string>();
    beforeAll(() => {
      dir = realpathSync(mkdtempSync(join(tmpdir(), "meshwork-entrypoint-")));
      app = join(dir, "app");
      mkdirSync(join(app, "deploy"), { recursive: true });
      copyFileSync(join(DEPLOY, "entrypoint.sh"), join(app, "deploy", "entrypoint.sh"));
      chmodSync(join(app, "deploy", "entrypoint.sh"), 0o755);
      copyFileSync(NODE_FLAGS_FILE, join(app, "deploy", "node-flags"));
      // The files scripts/build.ts writes, as the image holds them; a fake node prints what it was asked to run.
      for (const e of ENTRIES) {
        for (const js of [`dist/bundle/${e.name}.js`, `dist/bundle/${e.name}.code.js`]) {
          mkdirSync(dirname(join(app, js)), { recursive: true });
          writeFileSync(join(app, js), "");
        }
        emitted.set(e.name, `dist/bundle/${e.name}.js`);
      }
      mkdirSync(join(dir, "bin"));
      writeFileSync(join(dir, "bin", "node"), '#!/bin/sh\necho "$PWD|$*"\n', { mode: 0o755 });
    });
    afterAll(() => rmSync(dir, { recursive: true, force: true }));
    const run = (args: string[], env: NodeJS.ProcessEnv = {}) =>
      exitCode(join(app, "deploy", "entrypoint.sh"), args, { env: { PATH: `${join(dir, "bin")}:/usr/bin:/bin`, ...env }, cwd: dir });

    // What a service's node is started with: deploy/node-flags as the TypeScript launchers read it.
    const serviceFlags = (env: NodeJS.ProcessEnv = {}) => serviceNodeFlags(env).map((a) => `${a} `).join("");

    test("maps every service name to its bundle, with the extra arguments", async () => {
      for (const e of ENTRIES) {
        const r = await run([e.name, "--flag"]);
        const flags = e.name === "gateway" ? "" : serviceFlags();
        expect({ entry: e.name, code: r.code, out: r.stdout.trim() }).toEqual({ entry: e.name, code: 0, out: `${app}|${flags}${emitted.get(e.name)} --flag` });
      }
    });

    test("takes the service from MESHWORK_SERVICE when no argument is given", async () => {
      const r = await run([], { MESHWORK_SERVICE: "catalog" });
      expect(r.code).toBe(0);
      expect(r.stdout.trim()).toBe(`${app}|${serviceFlags()}${emitted.get("catalog")}`);
    });

    test("services get deploy/node-flags' flags unless MESHWORK_NODE_FLAGS replaces them", async () => {
      expect(serviceNodeFlags({}).length).toBeGreaterThan(0);
      expect((await run(["catalog"], { MESHWORK_NODE_FLAGS: "--stack-size=900" })).stdout.trim()).toBe(`${app}|--stack-size=900 ${emitted.get("catalog")}`);
      expect((await run(["catalog"], { MESHWORK_NODE_FLAGS: "" })).stdout.trim()).toBe(`${app}|${emitted.get("catalog")}`);
      expect(serviceFlags({ MESHWORK_NODE_FLAGS: "" })).toBe("");
    });

    test("refuses unknown, missing and path-like names with exit code 64", async () => {
      for (const args of [["nope"], [], ["../gateway"], ["Catalog"], ["catalog.code"]]) expect({ args, code: (await run(args)).code }).toEqual({ args, code: 64 });
      // The usage message lists the runnable names, not the bundled code files.
      const usage = (await run(["nope"])).stderr;
      expect(usage).toContain(`one of: gateway ${ENTRIES.filter((e) => e.name !== "gateway").map((e) => e.name).sort().join(" ")}`);
    });
  });

  describe("healthcheck.js (compose health checks)", () => {
    const script = join(DEPLOY, "healthcheck.js");
    let server: MeshServer | undefined;
    let http: HttpServer | undefined;
    afterEach(async () => {
      server?.forceShutdown();
      server = undefined;
      if (http) await new Promise((r) => http!.close(r));
      http = undefined;
    });

    test("grpc: exit 0 only while grpc.health.v1 reports SERVING", async () => {
      server = createMeshServer({ serviceName: "healthcheck-test", services: [], autoReady: false });
      const port = await server.listen(0, "127.0.0.1");
      expect((await exitCode(process.execPath, [script, "grpc", `127.0.0.1:${port}`])).code).toBe(1);
      server.markReady();
      expect((await exitCode(process.execPath, [script, "grpc", `127.0.0.1:${port}`])).code).toBe(0);
      server.health.shutdown();
      expect((await exitCode(process.execPath, [script, "grpc", `127.0.0.1:${port}`])).code).toBe(1);
      server.forceShutdown();
      server = undefined;
      expect((await exitCode(process.execPath, [script, "grpc", `127.0.0.1:${port}`])).code).toBe(1);
    });

    test("http: exit 0 on 2xx, 1 otherwise; 64 on bad usage", async () => {
      http = createServer((req, res) => res.writeHead(req.url === "/healthz" ? 200 : 503).end());
      await new Promise<void>((r) => http!.listen(0, "127.0.0.1", r));
      const { port } = http.address() as AddressInfo;
      expect((await exitCode(process.execPath, [script, "http", `http://127.0.0.1:${port}/healthz`])).code).toBe(0);
      expect((await exitCode(process.execPath, [script, "http", `http://127.0.0.1:${port}/other`])).code).toBe(1);
      expect((await exitCode(process.execPath, [script, "tcp", "1"])).code).toBe(64);
    });
  });
});

// ---------------------------------------------------------------------------------------------
// Compose
// ---------------------------------------------------------------------------------------------

describe("compose.yaml", () => {
  type ComposeService = {
    image?: string;
    build?: { context: string; dockerfile: string };
    command?: string[];
    environment?: Record<string, string>;
    volumes?: string[];
    healthcheck?: { test: string[] };
    depends_on?: Record<string, unknown>;
  };
  const compose = parse(readFileSync(join(DEPLOY, "compose.yaml"), "utf8"), { merge: true }) as { services: Record<string, ComposeService> };
  const meshwork = Object.entries(compose.services).filter(([, s]) => s.image?.startsWith(`${IMAGE}:`));

  test("runs every entry point from the Kubernetes image, built by deploy/Dockerfile", () => {
    expect(meshwork.map(([name]) => name).sort()).toEqual(ENTRIES.map((e) => e.name).sort());
    for (const [name, s] of meshwork) {
      expect(s.command).toEqual([name]);
      expect(resolve(DEPLOY, s.build!.context, s.build!.dockerfile)).toBe(join(DEPLOY, "Dockerfile"));
    }
  });

  test("env names are read by each workload's code and its config parser accepts them", () => {
    for (const [name, s] of meshwork) {
      const entry = ENTRIES.find((e) => e.name === name)!;
      const env = Object.fromEntries(Object.entries(s.environment ?? {}).map(([k, v]) => [k, String(v)]));
      const reads = readsOf(entry);
      expect({ name, unread: Object.keys(env).filter((k) => !reads.some((r) => r.test(k))) }).toEqual({ name, unread: [] });
      const cfg = loadConfigOf(entry)(env) as { runtime?: RuntimeConfig; port?: number };
      const port = cfg.runtime?.port ?? cfg.port;
      // The health check probes the port the process listens on.
      expect(s.healthcheck!.test.join(" ")).toContain(String(port));
      expect(s.healthcheck!.test).toContain("deploy/healthcheck.js");
      if (cfg.runtime) expect(cfg.runtime.advertiseHost).toBe(name);
    }
  });

  test("bind mounts exist, dependencies are defined, and PostgreSQL gets every password the init SQL reads", () => {
    for (const [name, s] of Object.entries(compose.services)) {
      for (const v of s.volumes ?? []) {
        const src = v.split(":")[0];
        if (src.startsWith(".")) expect({ name, src, exists: existsSync(resolve(DEPLOY, src)) }).toEqual({ name, src, exists: true });
      }
      for (const dep of Object.keys(s.depends_on ?? {})) expect(Object.keys(compose.services)).toContain(dep);
    }
    const pg = compose.services.postgres;
    const initMount = pg.volumes!.find((v) => v.includes("/docker-entrypoint-initdb.d/"))!;
    const init = readFileSync(resolve(DEPLOY, initMount.split(":")[0]), "utf8");
    const getenv = new Map([...init.matchAll(/^\\getenv (\w+) (\w+)$/gm)].map((m) => [m[1], m[2]]));
    for (const [name, s] of meshwork) {
      const url = s.environment?.MESHWORK_DATABASE_URL;
      if (!url) continue;
      const u = new URL(url);
      const variable = getenv.get(new RegExp(`^CREATE ROLE ${u.username} LOGIN PASSWORD :'(\\w+)';$`, "m").exec(init)![1])!;
      expect({ name, password: pg.environment![variable] }).toEqual({ name, password: decodeURIComponent(u.password) });
    }
  });
});

// ---------------------------------------------------------------------------------------------
// Configuration files against real servers
// ---------------------------------------------------------------------------------------------

test("the PostgreSQL init SQL runs under psql and gives each role its own database only", async () => {
  const init = readFileSync(join(DEPLOY, "k8s", "base", "config", "postgres-init.sql"), "utf8");
  const roles = [...init.matchAll(/^CREATE ROLE (\w+) /gm)].map((m) => m[1]);
  expect(roles.length).toBeGreaterThanOrEqual(ENTRIES.length - 1);
  // Roles are cluster-wide: run the script under unique names on the shared test server.
  const prefix = `mwdeploy_${process.pid}_`;
  const sql = init.replace(new RegExp(`\\b(${roles.join("|")})\\b(?=[ ;])`, "g"), `${prefix}$1`);
  const file = join(mkdtempSync(join(tmpdir(), "meshwork-pginit-")), "init.sql");
  writeFileSync(file, sql);
  // Passwords with quotes and spaces: the script must pass them through psql variables intact.
  const env: NodeJS.ProcessEnv = { ...process.env };
  const variables = new Map([...init.matchAll(/^\\getenv (\w+) (\w+)$/gm)].map((m) => [m[1], m[2]]));
  for (const v of variables.values()) env[v] = `pw'${v} "quoted"`;
  const passwordOf = (role: string) => env[variables.get(new RegExp(`^CREATE ROLE ${role} LOGIN PASSWORD :'(\\w+)';$`, "m").exec(init)![1])!];
  const admin = new URL(TEST_PG_ADMIN_URL);
  const connect = (role: string, database: string) =>
    new PgClient({ host: admin.hostname, port: Number(admin.port || 5432), user: prefix + role, password: passwordOf(role), database: prefix + database });
  try {
    let psql: string;
    try {
      psql = findBinary("psql");
    } catch {
      throw new Error("psql not found on PATH: install the PostgreSQL client (apt-get install postgresql-client); it runs the init SQL as the postgres image does");
    }
    const r = await exitCode(psql, ["-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", TEST_PG_ADMIN_URL, "-f", file], { env });
    expect(r).toMatchObject({ code: 0 });
    const [own, other] = [roles[0], roles[1]];
    const c = connect(own, own);
    await c.connect();
    await c.query("create table deploy_check (id int primary key)");
    await c.end();
    const denied = connect(own, other);
    const err = await denied.connect().then(
      () => undefined,
      (e: { code?: string }) => e,
    );
    await denied.end().catch(() => undefined);
    expect(err?.code).toBe("42501");
  } finally {
    const a = new PgClient({ connectionString: TEST_PG_ADMIN_URL });
    await a.connect();
    for (const r of roles) {
      await a.query(`drop database if exists ${prefix}${r} with (force)`);
      await a.query(`drop role if exists ${prefix}${r}`);
    }
    await a.end();
    rmSync(dirname(file), { recursive: true, force: true });
  }
});

test("nats.conf starts nats-server with JetStream enabled and the pod's server name", async () => {
  const dir = mkdtempSync(join(tmpdir(), "meshwork-natsconf-"));
  // Ports and the store move to free ones and a temp dir; the rest is the file as deployed.
  const conf = readFileSync(join(DEPLOY, "k8s", "base", "config", "nats.conf"), "utf8").replace(/^(\s*store_dir:).*$/m, `$1 ${JSON.stringify(join(dir, "js"))}`);
  writeFileSync(join(dir, "nats.conf"), conf);
  const [port, monitor] = [await freePort(), await freePort()];
  let nats: ManagedProcess | undefined;
  try {
    nats = startProcess(findBinary("nats-server"), ["-c", join(dir, "nats.conf"), "-a", "127.0.0.1", "-p", String(port), "-m", String(monitor)], { env: { ...process.env, POD_NAME: "nats-7" } });
    const status = await waitFor(
      async () => (await fetch(`http://127.0.0.1:${monitor}/healthz?js-enabled-only=true`)).status === 200,
      { what: `nats-server with deploy's nats.conf (${nats.output()})`, timeoutMs: 10_000 },
    );
    expect(status).toBe(true);
    const varz = (await (await fetch(`http://127.0.0.1:${monitor}/varz`)).json()) as { server_name: string; jetstream?: { config?: { max_storage: number } } };
    expect(varz.server_name).toBe("nats-7");
    expect(varz.jetstream?.config?.max_storage).toBeGreaterThan(0);
  } finally {
    await nats?.stop();
    rmSync(dir, { recursive: true, force: true });
  }
});
