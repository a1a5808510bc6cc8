import { randomBytes } from "node:crypto";
import { hostname } from "node:os";
import { join, resolve } from "node:path";

/** Settings every Meshwork process reads from its environment, parsed once. */
export interface RuntimeConfig {
  /** Logical service name, the registry key segment ("catalog"). */
  serviceName: string;
  /** Unique per process. MESHWORK_INSTANCE_ID; default `<service>-<host>-<pid>-<random>`. */
  instanceId: string;
  /** Interface to listen on. MESHWORK_HOST; default 127.0.0.1. */
  host: string;
  /** Port to listen on; 0 picks a free one. MESHWORK_PORT; default 0. */
  port: number;
  /** Address other processes use to reach this one. MESHWORK_ADVERTISE_HOST; default the host (or the hostname when listening on all interfaces). */
  advertiseHost: string;
  /** ETCD_ENDPOINTS: comma-separated URLs; default the local mesh's etcd. */
  etcdEndpoints: string[];
  /** NATS_URL; absent means events stay in the outbox until a broker is configured. */
  natsUrl: string | undefined;
  /** MESHWORK_DATA_DIR; default ./.data. */
  dataDir: string;
  /** MESHWORK_DATABASE_URL; default an SQLite file `<dataDir>/<service>.db` shared by the service's replicas. */
  databaseUrl: string;
  /** MESHWORK_VERSION; default 0.1.0. */
  version: string;
  /** MESHWORK_ZONE; optional locality label. */
  zone: string | undefined;
  /** MESHWORK_REGISTRY_TTL_SECONDS; default 5 (see mesh/registry). */
  registryTtlSeconds: number;
  /** MESHWORK_DRAIN_GRACE_MS: how long in-flight calls get on shutdown; default 10 000. */
  drainGraceMs: number;
}

/** Reads an optional env variable; empty counts as absent. */
export function envString(env: NodeJS.ProcessEnv, name: string): string | undefined {
  const v = env[name];
  return v === undefined || v.trim() === "" ? undefined : v.trim();
}

/** Reads an integer env variable within [min, max], or the fallback; fails naming the variable. */
export function envInt(env: NodeJS.ProcessEnv, name: string, fallback: number, min: number, max: number): number {
  const raw = envString(env, name);
  if (raw === undefined) return fallback;
  const n = Number(raw);
  if (!Number.isInteger(n) || n < min || n > max) {
    throw new Error(`${name} must be an integer between ${min} and ${max}, got '${raw}'`);
  }
  return n;
}

/** Reads a required env variable; fails naming it. */
export function envRequired(env: NodeJS.ProcessEnv, name: string): string {
  const v = envString(env, name);
  if (v === undefined) throw new Error(`${name} is required`);
  return v;
}

/** Parses the runtime settings of service `serviceName` from `env`; throws naming the bad variable. */
export function readRuntimeConfig(serviceName: string, env: NodeJS.ProcessEnv = process.env): RuntimeConfig {
  const host = envString(env, "MESHWORK_HOST") ?? "127.0.0.1";
  const dataDir = resolve(envString(env, "MESHWORK_DATA_DIR") ?? ".data");
  const etcd = envString(env, "ETCD_ENDPOINTS") ?? "http://127.0.0.1:2479";
  const etcdEndpoints = etcd.split(",").map((s) => s.trim()).filter(Boolean);
  for (const e of etcdEndpoints) {
    if (!/^https?:\/\/[^/\s]+$/.test(e)) throw new Error(`ETCD_ENDPOINTS must be comma-separated http(s)://host:port URLs, got '${e}'`);
  }
  const natsUrl = envString(env, "NATS_URL");
  if (natsUrl !== undefined && !/^(nats|tls):\/\/[^/\s]+$/.test(natsUrl)) throw new Error(`NATS_URL must look like nats://host:port, got '${natsUrl}'`);
  const databaseUrl = envString(env, "MESHWORK_DATABASE_URL") ?? `sqlite:${join(dataDir, `${serviceName}.db`)}`;
  const wildcard = host === "0.0.0.0" || host === "::";
  return {
    serviceName,
    instanceId: envString(env, "MESHWORK_INSTANCE_ID") ?? `${serviceName}-${hostname()}-${process.pid}-${randomBytes(3).toString("hex")}`,
    host,
    // 0: the kernel picks a free port and the registry publishes it, so replicas never collide.
    port: envInt(env, "MESHWORK_PORT", 0, 0, 65535),
    advertiseHost: envString(env, "MESHWORK_ADVERTISE_HOST") ?? (wildcard ? hostname() : host),
    etcdEndpoints,
    natsUrl,
    dataDir,
    databaseUrl,
    version: envString(env, "MESHWORK_VERSION") ?? "0.1.0",
    zone: envString(env, "MESHWORK_ZONE"),
    // 5 s: see mesh/registry (kill -9 visible within ~5 s; above etcd's 2 s minimum).
    registryTtlSeconds: envInt(env, "MESHWORK_REGISTRY_TTL_SECONDS", 5, 2, 3600),
    // 10 s: long enough for any unary call (the longest method timeout is 10 s), short enough to fit
    // Kubernetes' default 30 s termination grace with the deregistration wait.
    drainGraceMs: envInt(env, "MESHWORK_DRAIN_GRACE_MS", 10_000, 0, 600_000),
  };
}
