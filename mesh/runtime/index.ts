/**
 * What a service's main.ts uses: typed runtime config from the environment, the per-process
 * {@link Mesh} (etcd, discovery, balanced clients) and {@link runService} (listen, register,
 * drain on signals).
 */
export { readRuntimeConfig, envInt, envString, envRequired, type RuntimeConfig } from "./config.js";
export { Mesh, logicalServiceName, watcherEndpoints, type MeshOptions } from "./mesh.js";
export { runService, type RunServiceOptions, type RunningService } from "./run.js";
