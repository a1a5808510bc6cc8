import { Code, ConnectError } from "@connectrpc/connect";

/** Every registration lives under this prefix: `/meshwork/services/<service>/<instance-id>`. */
export const SERVICES_PREFIX = "/meshwork/services/";

/** What a running instance publishes about itself; stored as JSON under {@link instanceKey}. */
export interface InstanceInfo {
  /** Service name, e.g. "cart". */
  service: string;
  /** Unique per process, e.g. "cart-7f9c2". */
  instance: string;
  /** Host or IP the instance listens on. */
  address: string;
  port: number;
  /** Protocols served on `address:port`, e.g. ["grpc"]. */
  protocols: string[];
  version: string;
  zone?: string;
  /** ISO 8601 start time. */
  startedAt: string;
  metadata: Record<string, string>;
}

// Names become etcd key segments: no "/" (it would nest keys) and a bounded length; 128 chars is
// ample for a service name or a host-pid-random instance id.
const NAME_PATTERN = /^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$/;

function checkName(what: string, value: unknown): string {
  if (typeof value !== "string" || !NAME_PATTERN.test(value)) {
    throw new ConnectError(`${what} ${JSON.stringify(value)} must match ${NAME_PATTERN}`, Code.InvalidArgument);
  }
  return value;
}

/** `/meshwork/services/<service>/`: the prefix a watcher of one service reads. */
export function servicePrefix(service: string): string {
  return `${SERVICES_PREFIX}${checkName("service", service)}/`;
}

/** `/meshwork/services/<service>/<instance>`: the key one instance registers under. */
export function instanceKey(service: string, instance: string): string {
  return `${servicePrefix(service)}${checkName("instance", instance)}`;
}

function fail(field: string, problem: string): never {
  throw new ConnectError(`instance info: ${field} ${problem}`, Code.InvalidArgument);
}

function nonEmptyString(o: Record<string, unknown>, field: string): string {
  const v = o[field];
  if (typeof v !== "string" || v === "") fail(field, `must be a non-empty string, got ${JSON.stringify(v)}`);
  return v;
}

/**
 * Validates an {@link InstanceInfo} given as JSON text or as an object and returns a clean copy
 * (unknown fields dropped, so newer writers stay readable). Throws `ConnectError` with
 * `Code.InvalidArgument` naming the first bad field.
 */
export function parseInstance(input: string | unknown): InstanceInfo {
  let o: unknown = input;
  if (typeof input === "string") {
    try {
      o = JSON.parse(input);
    } catch (e) {
      throw new ConnectError(`instance info is not JSON: ${(e as Error).message}`, Code.InvalidArgument);
    }
  }
  if (typeof o !== "object" || o === null || Array.isArray(o)) fail("value", "must be a JSON object");
  const r = o as Record<string, unknown>;
  const service = checkName("service", r.service);
  const instance = checkName("instance", r.instance);
  const address = nonEmptyString(r, "address");
  const port = r.port;
  if (typeof port !== "number" || !Number.isInteger(port) || port < 1 || port > 65535) fail("port", `must be an integer in 1..65535, got ${JSON.stringify(port)}`);
  const protocols = r.protocols;
  if (!Array.isArray(protocols) || protocols.length === 0 || !protocols.every((p) => typeof p === "string" && p !== "")) {
    fail("protocols", `must be a non-empty array of non-empty strings, got ${JSON.stringify(protocols)}`);
  }
  if (typeof r.version !== "string") fail("version", `must be a string, got ${JSON.stringify(r.version)}`);
  if (r.zone !== undefined && typeof r.zone !== "string") fail("zone", `must be a string when present, got ${JSON.stringify(r.zone)}`);
  const startedAt = nonEmptyString(r, "startedAt");
  if (Number.isNaN(Date.parse(startedAt))) fail("startedAt", `must be an ISO 8601 time, got ${JSON.stringify(startedAt)}`);
  const metadata = r.metadata ?? {};
  if (typeof metadata !== "object" || metadata === null || Array.isArray(metadata) || !Object.values(metadata).every((v) => typeof v === "string")) {
    fail("metadata", "must be an object of string values");
  }
  const info: InstanceInfo = {
    service,
    instance,
    address,
    port,
    protocols: [...(protocols as string[])],
    version: r.version,
    startedAt,
    metadata: { ...(metadata as Record<string, string>) },
  };
  if (r.zone !== undefined) info.zone = r.zone;
  return info;
}
