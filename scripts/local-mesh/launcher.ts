import { chmodSync, existsSync, mkdirSync } from "node:fs";
import { createServer } from "node:net";
import { join, resolve } from "node:path";
import { createEtcdClient } from "../../mesh/etcd/client.js";
import { freePort, serviceNodeFlags, startEtcd, startNats, tsxArgs, type EtcdServer, type NatsServer } from "../../mesh/infra/index.js";
import { httpGet } from "../../mesh/infra/http-probe.js";
import { loadOrCreateDevSecrets } from "./dev-secrets.js";
import { checkHealth, registeredInstances } from "./instances.js";
import { GATEWAY_ENTRY, SHOP_SERVICES, type ServiceSpec } from "./shop.js";
import { Supervisor, type BackoffPolicy, type ExitReport } from "./supervisor.js";

/** Options of {@link startLocalMesh}. Everything has a default that suits `npm start`. */
export interface LocalMeshOptions {
  /** Repository root: where the entries live and the children's working directory. Default: this checkout. */
  rootDir?: string;
  /** etcd and NATS data, the SQLite files and the development keys; default `<root>/.data`, kept between runs. */
  dataDir?: string;
  /** What to run; default the shop ({@link SHOP_SERVICES}). */
  services?: readonly ServiceSpec[];
  /** Replica counts that override the specs' (e.g. `{ catalog: 3 }`). */
  replicas?: Record<string, number>;
  /** Listening ports; 0 picks a free one. Defaults: etcd 2479, NATS 4322, gateway 8080. */
  ports?: { etcd?: number; nats?: number; gateway?: number; console?: number };
  /** Use this etcd (comma-separated URLs) instead of starting one. */
  etcdEndpoints?: string;
  /** Use this NATS server instead of starting one. */
  natsUrl?: string;
  /**
   * Run the services and the gateway from the esbuild bundles in this folder (`npm run build`
   * writes dist/bundle/<name>.js; the image runs the same files) instead of their TypeScript
   * entries under tsx. Default: tsx, so edits take effect on the next start without a build.
   */
  bundleDir?: string;
  /** Start the gateway (default true). */
  gateway?: boolean;
  /** The environment children inherit (default `process.env`); per-instance variables are replaced. */
  env?: NodeJS.ProcessEnv;
  /** Receives every log line, launcher's and children's (default: stderr). */
  log?: (line: string) => void;
  /** Give up starting after this long (default {@link DEFAULT_READY_TIMEOUT_MS}). */
  readyTimeoutMs?: number;
  /** Restart backoff of crashed processes (default: supervisor.ts DEFAULT_BACKOFF). */
  backoff?: Partial<BackoffPolicy>;
  /** How long a process may drain after SIGTERM before SIGKILL. */
  stopGraceMs?: number;
  /** Aborting it cancels a start in progress (Ctrl-C while starting): everything started is stopped. */
  signal?: AbortSignal;
}

/** One running process of the mesh, as it was when the mesh became ready. */
export interface RunningInstance {
  service: string;
  instance: string;
  address: string;
  port: number;
  pid: number;
  version: string;
}

/** What {@link LocalMesh.stop} reports: how every supervised process ended. */
export interface StopReport {
  processes: ExitReport[];
  /** Every process exited with code 0 on SIGTERM, none had to be killed. */
  clean: boolean;
}

/** A started local mesh. */
export interface LocalMesh {
  /** Every service instance and the gateway, with their addresses. */
  readonly services: RunningInstance[];
  /** e.g. http://127.0.0.1:8080; undefined without a gateway. */
  readonly gatewayUrl: string | undefined;
  /** The mesh console, e.g. http://127.0.0.1:8090; undefined without a gateway. */
  readonly consoleUrl: string | undefined;
  readonly etcdEndpoints: string;
  readonly natsUrl: string;
  readonly dataDir: string;
  /** HS256 secret the gateway verifies development tokens with. */
  readonly jwtSecret: string;
  /** From the call to ready (every instance registered and SERVING, the gateway answering). */
  readonly readyMs: number;
  /** Current pid and start count of every supervised process (restarts show here). */
  processes(): { name: string; pid: number | undefined; starts: number }[];
  /**
   * Drains everything: the gateway, then services tier by tier (callers before the services they
   * call), each with SIGTERM and a bounded wait, then NATS and etcd (data kept). Idempotent.
   */
  stop(): Promise<StopReport>;
}

// A cold start of six tsx processes on a loaded 2-core machine takes ~10 s; 90 s means something is broken.
export const DEFAULT_READY_TIMEOUT_MS = 90_000;
// One above the standard ports, so a system etcd/NATS on 2379/4222 does not collide.
const DEFAULT_ETCD_PORT = 2479;
const DEFAULT_NATS_PORT = 4322;
// The gateway's own default (gateway/config.ts).
const DEFAULT_GATEWAY_PORT = 8080;
// The console's own default (console/main.ts).
const DEFAULT_CONSOLE_PORT = 8090;
// Readiness polling: fast enough that the reported ready time is within 0.1 s of the truth,
// cheap enough (one etcd range read) not to slow the start it measures.
const READY_POLL_MS = 100;
// Five crashes in a row (~4 s of backoff) while starting is a broken build or configuration, not
// a transient: fail the start instead of restarting until the ready timeout.
const START_CRASH_LIMIT = 5;
// Variables that identify one process: inherited values would give every child the same id, port or database.
const PER_INSTANCE_VARS = ["MESHWORK_INSTANCE_ID", "MESHWORK_PORT", "MESHWORK_DATABASE_URL", "MESHWORK_METRICS_PORT", "MESHWORK_GATEWAY_PORT"];

/** A start that cannot succeed by waiting longer. */
class StartFailure extends Error {}

/** Refuses a fixed port that is taken before a process crash-loops on it. */
async function assertPortFree(host: string, port: number, what: string): Promise<void> {
  await new Promise<void>((resolvePromise, reject) => {
    const srv = createServer();
    srv.once("error", (e: NodeJS.ErrnoException) =>
      reject(new Error(e.code === "EADDRINUSE" ? `${what} port ${host}:${port} is already in use; pick another with --gateway-port or MESHWORK_GATEWAY_PORT (0 = any free port)` : `${what} port ${host}:${port}: ${e.message}`)),
    );
    srv.listen(port, host, () => srv.close(() => resolvePromise()));
  });
}

/**
 * Starts the local mesh: etcd and NATS (or reuses the given ones), every service's replicas and
 * the gateway as separate supervised processes (crashes are restarted with backoff), and resolves
 * once every instance is registered in etcd with its pid and answers SERVING to a health check,
 * and the gateway answers `/healthz`. On failure everything started is stopped again.
 */
export async function startLocalMesh(opts: LocalMeshOptions = {}): Promise<LocalMesh> {
  const t0 = Date.now();
  const log = opts.log ?? ((line: string) => process.stderr.write(line + "\n"));
  const say = (msg: string) => log(`[meshwork] ${msg}`);
  const rootDir = resolve(opts.rootDir ?? join(__dirname, "..", ".."));
  const dataDir = resolve(opts.dataDir ?? join(rootDir, ".data"));
  mkdirSync(dataDir, { recursive: true });
  const baseEnv = { ...(opts.env ?? process.env) };
  const secrets = loadOrCreateDevSecrets(dataDir);
  const jwtSecret = baseEnv.MESHWORK_JWT_SECRET?.trim() || secrets.jwtSecret;
  const identityKey = baseEnv.MESHWORK_IDENTITY_KEY?.trim() || secrets.identityKey;
  for (const v of PER_INSTANCE_VARS) delete baseEnv[v];

  let etcd: EtcdServer | undefined;
  let nats: NatsServer | undefined;
  const supervisors: Array<{ sup: Supervisor; tier: number }> = [];
  const stopInfra = async () => {
    await nats?.stop({ keepData: true });
    await etcd?.stop({ keepData: true });
  };
  let stopped: Promise<StopReport> | undefined;
  const stop = () =>
    (stopped ??= (async () => {
      const reports: ExitReport[] = [];
      const tiers = [...new Set(supervisors.map((s) => s.tier))].sort((a, b) => b - a);
      for (const tier of tiers) {
        const group = supervisors.filter((s) => s.tier === tier);
        say(`stopping ${group.map((s) => s.sup.spec.name).join(", ")}`);
        for (const r of await Promise.all(group.map((s) => s.sup.stop()))) {
          reports.push(r);
          say(`${r.name} exited ${r.signal ? `by signal ${r.signal}` : `with code ${r.code}`}${r.killed ? " (killed after the grace period)" : ""}`);
        }
      }
      if (nats || etcd) say("stopping NATS and etcd (data kept)");
      await stopInfra();
      return { processes: reports, clean: reports.every((r) => r.code === 0 && !r.killed) };
    })());

  try {
    // etcd and NATS run silent: their start-up chatter (a 20-line banner, warnings about the
    // development setup) would bury the services' lines, and a failed start reports their output.
    // allSettled: when one fails, the other's start must finish (and be stopped), not leak a process.
    const infra = await Promise.allSettled([
      (async () => {
        if (opts.etcdEndpoints) return opts.etcdEndpoints;
        // 0: startEtcd picks free ports (and picks again if another process takes one first).
        const port = opts.ports?.etcd ?? DEFAULT_ETCD_PORT;
        // 0700: etcd warns on every start about a data dir others can read.
        mkdirSync(join(dataDir, "etcd"), { recursive: true });
        chmodSync(join(dataDir, "etcd"), 0o700);
        say(`starting etcd on ${port ? `127.0.0.1:${port}` : "a free port"} (data in ${join(dataDir, "etcd")})`);
        etcd = await startEtcd({ dataDir: join(dataDir, "etcd"), ...(port ? { clientPort: port, peerPort: port + 1 } : {}) });
        return etcd.endpoint;
      })(),
      (async () => {
        if (opts.natsUrl) return opts.natsUrl;
        const port = opts.ports?.nats ?? DEFAULT_NATS_PORT;
        mkdirSync(join(dataDir, "nats"), { recursive: true });
        say(`starting nats-server -js on ${port ? `127.0.0.1:${port}` : "a free port"} (data in ${join(dataDir, "nats")})`);
        nats = await startNats({ storeDir: join(dataDir, "nats"), ...(port ? { port, monitorPort: port + 1 } : {}) });
        return nats.url;
      })(),
    ]);
    const failed = infra.find((r) => r.status === "rejected");
    if (failed) throw failed.reason;
    const [etcdEndpoints, natsUrl] = infra.map((r) => (r as PromiseFulfilledResult<string>).value);
    say(`etcd ${etcdEndpoints}, NATS ${natsUrl} (${Date.now() - t0} ms)`);
    if (opts.signal?.aborted) throw new Error("start cancelled");

    const commonEnv: NodeJS.ProcessEnv = {
      ...baseEnv,
      ETCD_ENDPOINTS: etcdEndpoints,
      NATS_URL: natsUrl,
      MESHWORK_DATA_DIR: dataDir,
      MESHWORK_HOST: baseEnv.MESHWORK_HOST ?? "127.0.0.1",
      MESHWORK_IDENTITY_KEY: identityKey,
    };
    const expected = new Map<string, { service: string; sup: Supervisor }>();
    // Services start node as the image does (deploy/node-flags); the gateway and console do not.
    const nodeFlags = serviceNodeFlags(commonEnv);
    const bundleDir = opts.bundleDir === undefined ? undefined : resolve(opts.bundleDir);
    const entryArgs = (name: string, entry: string): string[] => {
      if (!bundleDir) return tsxArgs(join(rootDir, entry));
      const file = join(bundleDir, `${name}.js`);
      if (!existsSync(file)) throw new StartFailure(`${file} does not exist: run \`npm run build\` (scripts/build.ts) first`);
      return [file];
    };
    for (const spec of opts.services ?? SHOP_SERVICES) {
      const replicas = opts.replicas?.[spec.name] ?? spec.replicas;
      for (let i = 1; i <= replicas; i++) {
        const name = `${spec.name}-${i}`;
        const sup = new Supervisor(
          {
            name,
            command: process.execPath,
            args: [...nodeFlags, ...entryArgs(spec.name, spec.entry)],
            env: { ...commonEnv, ...spec.env, MESHWORK_INSTANCE_ID: name },
            cwd: rootDir,
            backoff: opts.backoff,
            stopGraceMs: opts.stopGraceMs,
          },
          log,
        );
        supervisors.push({ sup, tier: spec.tier });
        expected.set(name, { service: spec.name, sup });
      }
    }
    let gatewayUrl: string | undefined;
    let gateway: Supervisor | undefined;
    if (opts.gateway !== false) {
      const host = baseEnv.MESHWORK_GATEWAY_HOST ?? "127.0.0.1";
      const port = (opts.ports?.gateway ?? DEFAULT_GATEWAY_PORT) || (await freePort());
      await assertPortFree(host, port, "the gateway");
      gatewayUrl = `http://${host === "0.0.0.0" ? "127.0.0.1" : host}:${port}`;
      gateway = new Supervisor(
        {
          name: "gateway",
          command: process.execPath,
          args: entryArgs("gateway", GATEWAY_ENTRY),
          // Loopback by default: the development keys are on disk in plain text, so the edge must
          // not be reachable from the network unless the user asks (MESHWORK_GATEWAY_HOST).
          env: { ...commonEnv, MESHWORK_GATEWAY_HOST: host, MESHWORK_GATEWAY_PORT: String(port), MESHWORK_JWT_SECRET: jwtSecret },
          cwd: rootDir,
          backoff: opts.backoff,
          stopGraceMs: opts.stopGraceMs,
        },
        log,
      );
      // Above every service tier: the edge stops taking requests before anything behind it drains.
      supervisors.push({ sup: gateway, tier: Number.MAX_SAFE_INTEGER });
    }
    // The console goes with the gateway (a local mesh a person looks at); it only reads etcd and
    // the instances' metrics ports, so it stops with the edge.
    let consoleUrl: string | undefined;
    let consoleSup: Supervisor | undefined;
    if (opts.gateway !== false) {
      const port = (opts.ports?.console ?? DEFAULT_CONSOLE_PORT) || (await freePort());
      await assertPortFree("127.0.0.1", port, "the console");
      consoleUrl = `http://127.0.0.1:${port}`;
      consoleSup = new Supervisor(
        {
          name: "console",
          command: process.execPath,
          args: tsxArgs(join(rootDir, "console/main.ts")),
          env: { ...commonEnv, MESHWORK_CONSOLE_PORT: String(port), MESHWORK_CONSOLE_HOST: "127.0.0.1" },
          cwd: rootDir,
          backoff: opts.backoff,
          stopGraceMs: opts.stopGraceMs,
        },
        log,
      );
      supervisors.push({ sup: consoleSup, tier: Number.MAX_SAFE_INTEGER });
    }
    say(`starting ${expected.size} service instance(s)${gateway ? " and the gateway" : ""}`);
    for (const { sup } of supervisors) sup.start();

    const ready = new Map<string, RunningInstance>();
    let gatewayReady = gateway === undefined;
    // The console counts too: stopped before it has installed its SIGTERM handler (it answers HTTP
    // only after that), it would die of the signal instead of exiting 0.
    let consoleReady = consoleSup === undefined;
    const etcdClient = createEtcdClient(etcdEndpoints);
    const check = async (): Promise<boolean> => {
      const registered = await registeredInstances(etcdClient);
      await Promise.all(
        registered.map(async (info) => {
          const want = expected.get(info.instance);
          // The pid check skips an entry a killed earlier run left behind under the same id.
          if (!want || ready.has(info.instance) || info.metadata.pid !== String(want.sup.pid)) return;
          const { health } = await checkHealth(`${info.address}:${info.port}`);
          if (health !== "SERVING") return;
          ready.set(info.instance, { service: info.service, instance: info.instance, address: info.address, port: info.port, pid: want.sup.pid!, version: info.version });
          say(`${info.instance} SERVING on ${info.address}:${info.port} (${Date.now() - t0} ms)`);
        }),
      );
      for (const [name, { sup }] of expected) {
        if (!ready.has(name) && sup.consecutiveCrashes >= START_CRASH_LIMIT) throw new StartFailure(`${name} crashed ${sup.consecutiveCrashes} times in a row while starting; its lines above say why`);
      }
      if (gateway && !gatewayReady && gateway.consecutiveCrashes >= START_CRASH_LIMIT) {
        throw new StartFailure(`the gateway crashed ${gateway.consecutiveCrashes} times in a row while starting; its lines above say why`);
      }
      // A replica that restarted since it was seen ready must be seen again.
      for (const [name, r] of ready) if (r.pid !== expected.get(name)!.sup.pid) ready.delete(name);
      if (!gatewayReady && gatewayUrl) {
        const r = await httpGet(`${gatewayUrl}/healthz`).catch(() => undefined);
        if (r?.status === 200) {
          gatewayReady = true;
          say(`gateway answering on ${gatewayUrl} (${Date.now() - t0} ms)`);
        }
      }
      if (!consoleReady && consoleUrl) {
        const r = await httpGet(`${consoleUrl}/`).catch(() => undefined);
        if (r?.status === 200) consoleReady = true;
      }
      return ready.size === expected.size && gatewayReady && consoleReady;
    };
    try {
      // A loop of our own rather than waitFor: a cancelled start must end the polling at once.
      const timeoutMs = opts.readyTimeoutMs ?? DEFAULT_READY_TIMEOUT_MS;
      const deadline = Date.now() + timeoutMs;
      let lastError: Error | undefined;
      for (;;) {
        if (opts.signal?.aborted) throw new Error("start cancelled");
        try {
          if (await check()) break;
        } catch (e) {
          if (e instanceof StartFailure) throw e;
          lastError = e as Error;
        }
        if (Date.now() >= deadline) {
          const waiting = [...expected.keys()].filter((n) => !ready.has(n)).map((n) => `${n} (started ${expected.get(n)!.sup.starts}×)`);
          if (!gatewayReady) waiting.push(`gateway (started ${gateway!.starts}×)`);
          if (!consoleReady) waiting.push(`console (started ${consoleSup!.starts}×)`);
          throw new Error(`not ready after ${timeoutMs} ms: ${waiting.join(", ")}${lastError ? `; last error: ${lastError.message}` : ""}`);
        }
        await new Promise((r) => setTimeout(r, READY_POLL_MS));
      }
    } finally {
      etcdClient.close();
    }
    const readyMs = Date.now() - t0;
    const services = [...ready.values()].sort((a, b) => a.service.localeCompare(b.service) || a.instance.localeCompare(b.instance, undefined, { numeric: true }));
    if (gateway && gatewayUrl) {
      const u = new URL(gatewayUrl);
      services.push({ service: "gateway", instance: "gateway", address: u.hostname, port: Number(u.port), pid: gateway.pid!, version: "" });
    }
    return {
      services,
      gatewayUrl,
      consoleUrl,
      etcdEndpoints,
      natsUrl,
      dataDir,
      jwtSecret,
      readyMs,
      processes: () => supervisors.map(({ sup }) => ({ name: sup.spec.name, pid: sup.pid, starts: sup.starts })),
      stop,
    };
  } catch (e) {
    await stop();
    throw e;
  }
}
