/**
 * The Meshwork client: typed clients for any generated service over grpc-js, addressed by
 * service name through discovery or by fixed addresses, with balancing and policy hooks.
 */
export { createMeshTransport, hookCallValues, outgoingMetadata, outcomeOf, type MeshTransport, type MeshTransportOptions, type CallPolicy, type AttemptInfo } from "./transport.js";
export { ChannelPool, CLIENT_CHANNEL_OPTIONS } from "./channel-pool.js";
export { staticEndpoints, type EndpointSource } from "./endpoints.js";
