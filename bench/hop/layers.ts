/**
 * The Meshwork sides of the hop bench, from the bare mesh up to what a service runs, so that each
 * issue's goal is read off the layer it names and the cost of every layer is visible:
 * - `mesh-core`: discovery + balancing + the protobuf-es ↔ grpc-js adapter and the server
 *   bootstrap (registration, health, deadline capping); no call policy, no load shedding, no
 *   telemetry per call (#3's hop);
 * - `mesh-policy`: plus every resilience policy — the default call policy (retries with token
 *   bucket and budget, circuit breaker, per-try timeouts, deadline propagation) and the server's
 *   concurrency limit; still no spans or metrics per call (#4's and #10's "all policies on");
 * - `mesh`: as services run it — plus spans and RED metrics on both sides (runService's
 *   telemetry, the default sampler) and the policy's attempt events.
 */
export const MESH_LAYERS = ["mesh-core", "mesh-policy", "mesh"] as const;
export type MeshLayer = (typeof MESH_LAYERS)[number];

/** Each layer's server registers under its own name, so that a driver only ever balances over its own layer's server. */
export function layerService(layer: MeshLayer): string {
  return layer === "mesh" ? "benchhop" : `benchhop-${layer.slice("mesh-".length)}`;
}

export function isMeshLayer(kind: string): kind is MeshLayer {
  return (MESH_LAYERS as readonly string[]).includes(kind);
}
