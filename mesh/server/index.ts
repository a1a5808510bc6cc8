/**
 * The server bootstrap every Meshwork service uses: a grpc-js server with explicit channel
 * settings, the services through the mesh adapter, real `grpc.health.v1.Health` state, server
 * reflection (v1 and v1alpha) from the original descriptors, a graceful drain, and signal handling.
 */
export {
  createMeshServer,
  service,
  SERVER_CHANNEL_OPTIONS,
  DEFAULT_CONVERGENCE_DELAY_MS,
  DEFAULT_DRAIN_GRACE_MS,
  DEFAULT_HOOK_TIMEOUT_MS,
  type MeshServer,
  type MeshServerOptions,
  type ServiceEntry,
  type DrainHooks,
  type DrainStep,
} from "./server.js";
export { HealthState, ServingStatus, healthService } from "./health.js";
export { ReflectionIndex, addReflectionServices, REFLECTION_SERVICES } from "./reflection.js";
export { runUntilSignal, type RunUntilSignalOptions } from "./signals.js";
