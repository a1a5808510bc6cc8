import { envInt, readRuntimeConfig, type RuntimeConfig } from "../../mesh/runtime/index.js";

/** Everything orders reads from its environment, parsed once. */
export interface OrdersConfig {
  /** MESHWORK_* settings shared by every service (see mesh/runtime). */
  runtime: RuntimeConfig;
  /**
   * ORDERS_SAGA_LEASE_MS: how long a checkout saga stays with a process that stopped renewing it
   * before another process (or a restart) resumes it. Default 5,000: as long as the registry needs
   * to forget a killed instance.
   */
  sagaLeaseMs: number;
}

/** Parses the orders environment; throws naming the bad variable. */
export function loadConfig(env: NodeJS.ProcessEnv = process.env): OrdersConfig {
  // 1 s minimum: below it a GC pause could cost a live process its sagas; 10 min maximum: longer
  // leaves customers' checkouts stuck behind a dead process.
  return { runtime: readRuntimeConfig("orders", env), sagaLeaseMs: envInt(env, "ORDERS_SAGA_LEASE_MS", 5_000, 1_000, 600_000) };
}
