import { readRuntimeConfig, type RuntimeConfig } from "../../mesh/runtime/index.js";

/** Everything the catalog reads from its environment, parsed once. */
export interface CatalogConfig {
  /** MESHWORK_* settings shared by every service (see mesh/runtime). */
  runtime: RuntimeConfig;
}

/** Parses the catalog's environment; throws naming the bad variable. */
export function loadConfig(env: NodeJS.ProcessEnv = process.env): CatalogConfig {
  return { runtime: readRuntimeConfig("catalog", env) };
}
