/**
 * A changing set of endpoint addresses ("host:port") for one service. Discovery provides one per
 * service; {@link staticEndpoints} serves fixed addresses for direct use.
 */
export interface EndpointSource {
  /** Addresses known now. */
  current(): readonly string[];
  /** Calls `fn` with the new set after every change; returns an unsubscribe function. */
  subscribe(fn: (addresses: readonly string[]) => void): () => void;
  /** Resolves once the first set is known (after discovery's initial read). */
  ready(): Promise<void>;
}

/** A fixed set of addresses, e.g. `staticEndpoints("127.0.0.1:50051")`. */
export function staticEndpoints(...addresses: string[]): EndpointSource {
  const list = Object.freeze([...addresses]);
  return {
    current: () => list,
    subscribe: () => () => undefined,
    ready: () => Promise.resolve(),
  };
}
