import type { DescService } from "@bufbuild/protobuf";
import { Code, ConnectError, type HandlerContext, type ServiceImpl } from "@connectrpc/connect";
import { Server, ServerCredentials, type ChannelOptions } from "@grpc/grpc-js";
import { setMaxListeners } from "node:events";
import { deadlineMiddleware, serverTimeouts } from "../deadline/index.js";
import { grpcImplementation, grpcServiceDefinition, type AdapterOptions, type ServerMiddleware } from "../grpc/index.js";
import { createConcurrencyLimit, type ConcurrencyLimitOptions } from "../policy/index.js";
import { tracingMiddleware } from "../telemetry/index.js";
import { Health, HealthState, healthService, ServingStatus } from "./health.js";
import { addReflectionServices, REFLECTION_SERVICES, ReflectionIndex } from "./reflection.js";

/**
 * Channel settings of every Meshwork server. Clients (mesh/client CLIENT_CHANNEL_OPTIONS) use the
 * same keepalive and message limits.
 */
export const SERVER_CHANNEL_OPTIONS: ChannelOptions = {
  // Ping every 30 s like the clients do, so a half-open client connection (and its Watch
  // streams) is found within ~35 s instead of lingering until TCP gives up.
  "grpc.keepalive_time_ms": 30_000,
  // A loopback/LAN peer acks a ping in well under 5 s; longer means it is gone.
  "grpc.keepalive_timeout_ms": 5_000,
  // grpc-js servers ping whether or not calls are active; stated so the intent (idle Watch
  // connections are checked too) survives a switch to a server that reads it.
  "grpc.keepalive_permit_without_calls": 1,
  // gRPC's own receive default, made explicit; the send side is unlimited by default: cap it
  // the same so a runaway response fails here with ResourceExhausted, not in the client.
  "grpc.max_receive_message_length": 4 * 1024 * 1024,
  "grpc.max_send_message_length": 4 * 1024 * 1024,
  // Node's default is ~2^32 streams per connection: bound what one client can have in flight on
  // one connection (far above any shop caller's concurrency, well below memory trouble).
  "grpc.max_concurrent_streams": 1_000,
  // Reclaim connections of clients that stopped calling; one calling at least every 5 min
  // never pays a reconnect. Keepalive pings do not count as activity.
  "grpc.max_connection_idle_ms": 5 * 60_000,
  // No channelz service is served, and its per-call bookkeeping (tracker closures, timestamps)
  // was ~2 % of the server's CPU per call on the hop bench.
  "grpc.enable_channelz": 0,
};

/**
 * Time for the registry deletion to reach every client before the server stops accepting calls:
 * etcd delivers watch events in ~10 ms on a healthy cluster, the client then updates its endpoint
 * list and picker; 250 ms covers that with a wide margin on a loaded machine.
 */
export const DEFAULT_CONVERGENCE_DELAY_MS = 250;

/**
 * How long in-flight calls may run after the server stops accepting new ones. The shop's unary
 * deadlines are ≤ 5 s; 10 s lets them finish and, with the steps before it, stays well inside
 * Kubernetes' default terminationGracePeriodSeconds of 30 s.
 */
export const DEFAULT_DRAIN_GRACE_MS = 10_000;

/**
 * Bound on each drain hook: a hook that hangs (etcd unreachable) must not hold the process
 * until Kubernetes kills it; the registry lease then expires by its TTL (5 s) anyway.
 */
export const DEFAULT_HOOK_TIMEOUT_MS = 3_000;

/**
 * After the grace period, how long the Unavailable answers of aborted calls get to reach their
 * clients before the connections are destroyed: they are written within an event-loop turn, so
 * 200 ms only matters for a client that stopped reading.
 */
const FORCE_FLUSH_MS = 200;

/** The first of `work` to settle, or "timeout" after `ms`. */
async function within<T>(ms: number, work: Promise<T>[]): Promise<T | "timeout"> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<"timeout">((resolve) => (timer = setTimeout(resolve, ms, "timeout")));
  try {
    return await Promise.race([...work, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

/** A service and its implementation, as {@link createMeshServer} takes them; build with {@link service}. */
export interface ServiceEntry {
  desc: DescService;
  impl: Partial<ServiceImpl<DescService>>;
}

/** A type-checked {@link ServiceEntry}: `impl` must match `desc`. */
export function service<S extends DescService>(desc: S, impl: Partial<ServiceImpl<S>>): ServiceEntry {
  return { desc, impl: impl as Partial<ServiceImpl<DescService>> };
}

/** Steps of {@link MeshServer.drain}, in order; `force-shutdown` only when the grace expired. */
export type DrainStep =
  | "not-serving"
  | "deregister"
  | "deregister-failed"
  | "converge"
  | "converge-failed"
  | "stop-accepting"
  | "force-shutdown"
  | "stopped";

/** Options of {@link createMeshServer}. */
export interface MeshServerOptions {
  /** Logical name of the service ("catalog"), for logs and the registry. */
  serviceName: string;
  /** The services this server implements; each becomes known to health and reflection. */
  services: ServiceEntry[];
  /**
   * Extra middleware around every call to `services`, inside the standard stack (tracing and RED
   * metrics → deadline propagation → concurrency limit); not applied to health and reflection.
   */
  middleware?: ServerMiddleware[];
  /** The deadline a call gets from the one the client asked for; default: capped at and defaulted to the contract's timeout. */
  timeoutFor?: AdapterOptions["timeoutFor"];
  /** Settings of the per-server concurrency limit on unary calls (load shedding); `false` turns it off. */
  concurrency?: ConcurrencyLimitOptions | false;
  /**
   * `false`: no server span and no RED metrics per call (the tracing middleware is left out). For
   * measuring the bare mesh (bench/hop); services keep the default, true.
   */
  telemetry?: boolean;
  /** Merged over {@link SERVER_CHANNEL_OPTIONS}. */
  grpcOptions?: ChannelOptions;
  /**
   * true (default): health turns SERVING as soon as `listen` has bound the port, for services
   * that finish their startup before listening. false: stays NOT_SERVING until `markReady()`.
   */
  autoReady?: boolean;
  /** Default {@link DEFAULT_DRAIN_GRACE_MS}. */
  drainGraceMs?: number;
  /** Wait used when `drain` gets no `waitForConvergence` hook. Default {@link DEFAULT_CONVERGENCE_DELAY_MS}. */
  convergenceDelayMs?: number;
  /** Bound on each drain hook. Default {@link DEFAULT_HOOK_TIMEOUT_MS}. */
  hookTimeoutMs?: number;
  /** Called at each drain step (for logs and tests); `error` is set for the `-failed` steps. */
  onDrainStep?: (step: DrainStep, error?: unknown) => void;
}

/** Hooks run by {@link MeshServer.drain} between NOT_SERVING and stopping. */
export interface DrainHooks {
  /** Removes the instance from discovery (the registry revokes its lease). */
  deregister?: () => Promise<void>;
  /** Resolves once clients have stopped picking this instance; default: a fixed delay. */
  waitForConvergence?: () => Promise<void>;
  /** Overrides the server's drain grace for this drain (e.g. from MESHWORK_DRAIN_GRACE_MS). */
  graceMs?: number;
}

/** A gRPC server with health, reflection and a graceful drain; see {@link createMeshServer}. */
export interface MeshServer {
  /** Binds `host:port` (port 0 = a free one) and resolves with the bound port. Host default `0.0.0.0`. */
  listen(port: number, host?: string): Promise<number>;
  /** The bound port; 0 before `listen`. */
  readonly port: number;
  /** Serving status per service (`""` = the whole server), behind grpc.health.v1.Health. */
  readonly health: HealthState;
  /** Every known service SERVING (ignored once draining). */
  markReady(): void;
  /**
   * Graceful stop: NOT_SERVING → `deregister` → `waitForConvergence` → stop accepting calls
   * (GOAWAY; in-flight calls continue) → force-close what is still running after the grace
   * period. Idempotent: later calls return the same promise.
   */
  drain(hooks?: DrainHooks): Promise<void>;
  /**
   * Aborts every running call now (its handler's ctx.signal; the client gets Unavailable) and
   * destroys all connections one macrotask later, once those answers are written.
   */
  forceShutdown(): void;
  /** Aborted by `forceShutdown` (also when the drain grace expires); every handler's ctx.signal follows it. */
  readonly shutdownSignal: AbortSignal;
}

/**
 * Builds an unstarted Meshwork server: the given services through the mesh adapter, plus
 * `grpc.health.v1.Health` (all services NOT_SERVING until ready) and server reflection v1 and
 * v1alpha over the original descriptors (for grpcurl / buf curl).
 */
export function createMeshServer(opts: MeshServerOptions): MeshServer {
  const grpcServer = new Server({ ...SERVER_CHANNEL_OPTIONS, ...opts.grpcOptions });
  const shutdown = new AbortController();
  // Each in-flight call links its ctx.signal here; Node's warning at 11 listeners is noise.
  setMaxListeners(0, shutdown.signal);
  const health = new HealthState(opts.services.map((s) => s.desc.typeName));
  const drainGraceMs = opts.drainGraceMs ?? DEFAULT_DRAIN_GRACE_MS;
  const hookTimeoutMs = opts.hookTimeoutMs ?? DEFAULT_HOOK_TIMEOUT_MS;
  const step = (s: DrainStep, error?: unknown) => opts.onDrainStep?.(s, error);

  // Aborted when the server stops accepting calls: ends the streams that never end by themselves.
  const stopping = new AbortController();
  const limit = opts.concurrency === false ? undefined : createConcurrencyLimit(opts.concurrency);
  const middleware: ServerMiddleware[] = [
    ...(opts.telemetry === false ? [] : [tracingMiddleware()]),
    // Shed before any work is done; streams live for minutes, so only unary calls count.
    ...(limit ? [(ctx: HandlerContext, next: () => Promise<void>) => (ctx.method.methodKind === "unary" ? limit.middleware(ctx, next) : next())] : []),
    deadlineMiddleware(),
    ...(opts.middleware ?? []),
  ];
  const timeoutFor = opts.timeoutFor ?? serverTimeouts();
  for (const { desc, impl } of opts.services) {
    grpcServer.addService(
      grpcServiceDefinition(desc),
      grpcImplementation(desc, impl, { middleware, timeoutFor, shutdownSignal: shutdown.signal, drainSignal: stopping.signal }),
    );
  }
  // Probes and tooling bypass the middleware (auth, logging): a kubelet has no token, and a probe
  // every few seconds would drown the call logs.
  grpcServer.addService(grpcServiceDefinition(Health), grpcImplementation(Health, healthService(health), { shutdownSignal: shutdown.signal }));
  addReflectionServices(grpcServer, new ReflectionIndex([...opts.services.map((s) => s.desc), Health, ...REFLECTION_SERVICES]), stopping.signal);

  let port = 0;
  let listening: Promise<number> | undefined;
  let draining: Promise<void> | undefined;
  let forced!: () => void;
  const forcedPromise = new Promise<void>((resolve) => (forced = resolve));

  // Every running handler's ctx.signal aborts, and the adapter answers its call Unavailable.
  const abortCalls = () => {
    if (!shutdown.signal.aborted) shutdown.abort(new ConnectError(`${opts.serviceName} is shutting down`, Code.Unavailable));
    health.shutdown();
    health.closeWatchers();
    stopping.abort();
  };
  const forceShutdown = () => {
    abortCalls();
    forced();
    // One macrotask lets the aborted calls' Unavailable answers reach the connections: destroyed
    // at once, the calls would reach their clients as Cancelled, which no retry policy retries.
    setImmediate(() => grpcServer.forceShutdown());
  };

  async function runHook(name: "deregister" | "converge", hook: () => Promise<void>) {
    step(name);
    let timer: NodeJS.Timeout | undefined;
    try {
      await Promise.race([
        hook(),
        new Promise<never>((_, reject) => {
          timer = setTimeout(() => reject(new ConnectError(`${name} hook exceeded ${hookTimeoutMs} ms`, Code.DeadlineExceeded)), hookTimeoutMs);
        }),
      ]);
    } catch (err) {
      // Shutdown goes on: stopping late is worse than a registry entry that expires by TTL.
      step(`${name}-failed`, err);
    } finally {
      clearTimeout(timer);
    }
  }

  async function runDrain(hooks: DrainHooks): Promise<void> {
    step("not-serving");
    health.shutdown();
    if (hooks.deregister) await runHook("deregister", hooks.deregister);
    const delay = opts.convergenceDelayMs ?? DEFAULT_CONVERGENCE_DELAY_MS;
    await runHook("converge", hooks.waitForConvergence ?? (() => new Promise((resolve) => setTimeout(resolve, delay))));
    step("stop-accepting");
    // Watch and reflection streams never end by themselves; left open they would hold the stop
    // until the grace period expires.
    health.closeWatchers();
    stopping.abort();
    const stopped = new Promise<"stopped">((resolve) => grpcServer.tryShutdown(() => resolve("stopped")));
    const wasForced = forcedPromise.then(() => "forced" as const);
    if ((await within(hooks.graceMs ?? drainGraceMs, [stopped, wasForced])) === "timeout") {
      step("force-shutdown");
      // Answer the remaining calls Unavailable, and let the answers go out before destroying.
      abortCalls();
      await within(FORCE_FLUSH_MS, [stopped, wasForced]);
      forceShutdown();
      await new Promise((resolve) => setImmediate(resolve));
    }
    step("stopped");
  }

  return {
    listen(p, host = "0.0.0.0") {
      if (listening) return Promise.reject(new Error(`${opts.serviceName}: listen was already called`));
      const address = host.includes(":") && !host.startsWith("[") ? `[${host}]:${p}` : `${host}:${p}`;
      listening = new Promise<number>((resolve, reject) =>
        grpcServer.bindAsync(address, ServerCredentials.createInsecure(), (err, bound) => (err ? reject(err) : resolve(bound))),
      ).then(
        (bound) => {
          port = bound;
          if (opts.autoReady !== false) health.setAll(ServingStatus.SERVING);
          return bound;
        },
        (err: unknown) => {
          listening = undefined; // e.g. the port is taken: the caller may try another
          throw err;
        },
      );
      return listening;
    },
    get port() {
      return port;
    },
    health,
    markReady() {
      health.setAll(ServingStatus.SERVING);
    },
    drain(hooks = {}) {
      draining ??= runDrain(hooks);
      return draining;
    },
    forceShutdown,
    shutdownSignal: shutdown.signal,
  };
}
