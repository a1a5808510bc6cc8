import { envInt, readRuntimeConfig, type RuntimeConfig } from "../../mesh/runtime/index.js";

/** Everything the inventory reads from its environment, parsed once. */
export interface InventoryConfig {
  /** MESHWORK_* settings shared by every service (see mesh/runtime). */
  runtime: RuntimeConfig;
  /** INVENTORY_SWEEP_INTERVAL_MS: how often expired reservations are released. */
  sweepIntervalMs: number;
  /** INVENTORY_LOW_STOCK_THRESHOLD: StockLow fires when available falls to or below it. */
  lowStockThreshold: number;
}

/** Parses the inventory's environment; throws naming the bad variable. */
export function loadConfig(env: NodeJS.ProcessEnv = process.env): InventoryConfig {
  return {
    runtime: readRuntimeConfig("inventory", env),
    // 1 s: a reservation outlives its expiry by at most ~1 s, at one indexed query a second.
    sweepIntervalMs: envInt(env, "INVENTORY_SWEEP_INTERVAL_MS", 1_000, 10, 3_600_000),
    // 5 units: a few orders' worth of warning before a typical product sells out.
    lowStockThreshold: envInt(env, "INVENTORY_LOW_STOCK_THRESHOLD", 5, 0, 1_000_000),
  };
}
