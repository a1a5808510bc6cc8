import type { DescService } from "@bufbuild/protobuf";
import { createClient, type Client, type Interceptor } from "@connectrpc/connect";
import type { Etcd3 } from "etcd3";
import { ChannelPool, createMeshTransport, type CallPolicy, type EndpointSource, type MeshTransport } from "../client/index.js";
import type { BalancerOptions } from "../balancer/index.js";
import { Discovery, type ServiceWatcher } from "../discovery/index.js";
import { createEtcdClient } from "../etcd/client.js";
import { createCallPolicy, type ServiceCallPolicy } from "../policy/index.js";
import { instrumentPolicy, observeClient, recordEjection, tracingInterceptor } from "../telemetry/index.js";

/** Options for {@link Mesh}. */
export interface MeshOptions {
  etcdEndpoints: string[];
  /**
   * The call policy for an upstream service. Default: mesh/policy's `createCallPolicy` (A6 retries
   * with throttling and a budget, a circuit breaker, deadline propagation), instrumented for traces
   * and metrics. Return undefined for a plain single-attempt transport.
   */
  policyFor?: (serviceName: string) => CallPolicy | undefined;
  /** Connect interceptors on every outgoing call; default: tracing and RED metrics. */
  interceptors?: Interceptor[];
  balancer?: BalancerOptions;
}

/** The standard policy of a Meshwork client: resilience from mesh/policy, observed by telemetry. */
export function defaultPolicy(serviceName: string): CallPolicy {
  return instrumentPolicy(createCallPolicy({ service: serviceName }), serviceName);
}

/** The logical service name of a generated service: the first package segment ("catalog" for catalog.v1.CatalogService). */
export function logicalServiceName(desc: DescService): string {
  return desc.typeName.split(".")[0];
}

/** An {@link EndpointSource} over a discovery watcher: "address:port" of every registered instance. */
export function watcherEndpoints(watcher: ServiceWatcher): EndpointSource {
  const addresses = () => watcher.endpoints().map((i) => `${i.address}:${i.port}`);
  return {
    current: addresses,
    subscribe(fn) {
      const onChange = () => fn(addresses());
      watcher.on("change", onChange);
      return () => watcher.off("change", onChange);
    },
    ready: () => watcher.ready(),
  };
}

/**
 * One per process: the etcd client, discovery (one watch per upstream service), one channel per
 * endpoint shared by every client, and a transport per upstream service.
 */
export class Mesh {
  readonly etcd: Etcd3;
  readonly discovery: Discovery;
  private readonly channels = new ChannelPool();
  private readonly transports = new Map<string, MeshTransport>();
  private readonly sources = new Map<string, EndpointSource>();
  private readonly unobserve: Array<() => void> = [];

  constructor(private readonly opts: MeshOptions) {
    this.etcd = createEtcdClient(opts.etcdEndpoints);
    this.discovery = new Discovery(this.etcd);
  }

  /** The balanced transport to `serviceName`, created on first use. */
  transport(serviceName: string): MeshTransport {
    let t = this.transports.get(serviceName);
    if (!t) {
      const endpoints = watcherEndpoints(this.discovery.watch(serviceName));
      this.sources.set(serviceName, endpoints);
      // Channels are shared across services; close the ones no service lists any more.
      endpoints.subscribe(() => this.pruneChannels());
      const policy = (this.opts.policyFor ?? defaultPolicy)(serviceName);
      t = createMeshTransport({
        endpoints,
        serviceName,
        channels: this.channels,
        policy,
        interceptors: this.opts.interceptors ?? [tracingInterceptor()],
        balancer: { onEjection: recordEjection, ...this.opts.balancer },
      });
      const breaker = (policy as Partial<ServiceCallPolicy> | undefined)?.breaker;
      this.unobserve.push(observeClient(serviceName, { balancer: t.balancer, breakerState: breaker ? () => breaker.state : undefined }));
      this.transports.set(serviceName, t);
    }
    return t;
  }

  /** A typed client for a generated service, found through discovery by its logical name. */
  client<S extends DescService>(desc: S, opts: { serviceName?: string } = {}): Client<S> {
    return createClient(desc, this.transport(opts.serviceName ?? logicalServiceName(desc)));
  }

  private pruneChannels(): void {
    const keep = new Set<string>();
    for (const src of this.sources.values()) for (const a of src.current()) keep.add(a);
    this.channels.retain(keep);
  }

  /** Closes transports, channels, watchers and the etcd client. */
  async close(): Promise<void> {
    for (const undo of this.unobserve.splice(0)) undo();
    for (const t of this.transports.values()) t.close();
    this.transports.clear();
    this.channels.close();
    await this.discovery.close();
    this.etcd.close();
  }
}
