/** One service of the local mesh: what to run and how many replicas. */
export interface ServiceSpec {
  /** Logical service name, as registered in etcd ("catalog"); instances are `<name>-1`, `<name>-2`, ... */
  name: string;
  /** TypeScript entry, relative to the repository root (run with tsx's loader). */
  entry: string;
  replicas: number;
  /**
   * Stop order: the highest tier drains first. Callers (orders) stop before the services they
   * call (catalog, inventory, payments), so a checkout in flight can finish its calls.
   */
  tier: number;
  /** Extra environment for every replica. */
  env?: Record<string, string>;
}

/** The reference shop. Two catalog replicas by default, so balancing is visible from the start. */
export const SHOP_SERVICES: readonly ServiceSpec[] = [
  { name: "catalog", entry: "services/catalog/main.ts", replicas: 2, tier: 0 },
  { name: "inventory", entry: "services/inventory/main.ts", replicas: 1, tier: 0 },
  { name: "payments", entry: "services/payments/main.ts", replicas: 1, tier: 0 },
  { name: "orders", entry: "services/orders/main.ts", replicas: 1, tier: 1 },
  { name: "notifications", entry: "services/notifications/main.ts", replicas: 1, tier: 1 },
];

/** The gateway's entry, relative to the repository root. */
export const GATEWAY_ENTRY = "gateway/main.ts";

// More would only be a typo on a 2-core development machine (each replica is a 60-160 MiB process).
const MAX_REPLICAS = 8;

/**
 * Parses `catalog=2,inventory=2` (MESHWORK_REPLICAS or `--replicas`) into counts per service;
 * throws naming the bad entry. `known` lists the valid service names.
 */
export function parseReplicas(text: string, known: readonly string[]): Record<string, number> {
  const out: Record<string, number> = {};
  for (const part of text.split(",").map((s) => s.trim()).filter(Boolean)) {
    const m = /^([a-z][a-z0-9-]*)=(\d+)$/.exec(part);
    if (!m) throw new Error(`replicas entry '${part}' must look like catalog=2`);
    const [, name, count] = m;
    if (!known.includes(name)) throw new Error(`replicas entry '${part}': unknown service '${name}' (known: ${known.join(", ")})`);
    const n = Number(count);
    if (n < 0 || n > MAX_REPLICAS) throw new Error(`replicas entry '${part}': count must be between 0 and ${MAX_REPLICAS}`);
    out[name] = n;
  }
  return out;
}
