import { envInt, readRuntimeConfig, type RuntimeConfig } from "../../mesh/runtime/index.js";

/** Everything the payments service reads from its environment, parsed once. */
export interface PaymentsConfig {
  /** MESHWORK_* settings shared by every service (see mesh/runtime). */
  runtime: RuntimeConfig;
  /** PAYMENTS_SLOW_CARD_DELAY_MS: how long the simulated processor takes for the slow test card. */
  slowCardDelayMs: number;
}

/** Parses the payments service's environment; throws naming the bad variable. */
export function loadConfig(env: NodeJS.ProcessEnv = process.env): PaymentsConfig {
  return {
    runtime: readRuntimeConfig("payments", env),
    // 1.5 s: longer than a typical 1 s per-attempt timeout, shorter than Authorize's 5 s deadline,
    // so the slow card exercises per-try timeouts and deadline propagation without failing outright.
    slowCardDelayMs: envInt(env, "PAYMENTS_SLOW_CARD_DELAY_MS", 1_500, 0, 60_000),
  };
}
