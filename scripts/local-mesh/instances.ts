import { createClient } from "@connectrpc/connect";
import type { Etcd3 } from "etcd3";
import { Health, HealthCheckResponse_ServingStatus as ServingStatus } from "../../gen/grpc/health/v1/health_pb.js";
import { createMeshTransport, staticEndpoints } from "../../mesh/client/index.js";
import { parseInstance, SERVICES_PREFIX, type InstanceInfo } from "../../mesh/registry/index.js";

/** A registered instance with the answer of its health check. */
export interface InstanceStatus extends InstanceInfo {
  /** SERVING, NOT_SERVING, UNKNOWN, or UNREACHABLE when the check itself failed. */
  health: string;
  /** Why the check failed (code and message), when health is UNREACHABLE. */
  healthError?: string;
}

// A loopback health check answers in about a millisecond; 1 s means the process is stuck or gone.
const HEALTH_TIMEOUT_MS = 1_000;

/**
 * Every instance registered under `/meshwork/services/`, sorted by service then instance.
 * Entries that do not parse are skipped and reported through `onInvalid`.
 */
export async function registeredInstances(etcd: Etcd3, onInvalid?: (key: string, err: Error) => void): Promise<InstanceInfo[]> {
  const kvs = await etcd.getAll().prefix(SERVICES_PREFIX).strings();
  const out: InstanceInfo[] = [];
  for (const [key, value] of Object.entries(kvs)) {
    try {
      out.push(parseInstance(value));
    } catch (e) {
      onInvalid?.(key, e as Error);
    }
  }
  return out.sort((a, b) => a.service.localeCompare(b.service) || a.instance.localeCompare(b.instance, undefined, { numeric: true }));
}

/** `grpc.health.v1.Health/Check` for the whole server (service "") at `host:port`. */
export async function checkHealth(address: string, timeoutMs = HEALTH_TIMEOUT_MS): Promise<{ health: string; error?: string }> {
  const transport = createMeshTransport({ endpoints: staticEndpoints(address), serviceName: address });
  try {
    const res = await createClient(Health, transport).check({ service: "" }, { timeoutMs });
    return { health: ServingStatus[res.status] ?? String(res.status) };
  } catch (e) {
    const err = e as { code?: number; rawMessage?: string; message?: string };
    return { health: "UNREACHABLE", error: err.rawMessage ?? err.message };
  } finally {
    transport.close();
  }
}

/** The registered instances, each with its health checked (in parallel). */
export async function instanceStatuses(etcd: Etcd3, opts: { timeoutMs?: number; onInvalid?: (key: string, err: Error) => void } = {}): Promise<InstanceStatus[]> {
  const instances = await registeredInstances(etcd, opts.onInvalid);
  return Promise.all(
    instances.map(async (i) => {
      const h = await checkHealth(`${i.address}:${i.port}`, opts.timeoutMs);
      return { ...i, health: h.health, ...(h.error ? { healthError: h.error } : {}) };
    }),
  );
}
