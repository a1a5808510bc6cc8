import type { Etcd3 } from "etcd3";
import { hostname } from "node:os";
import { Registration } from "../mesh/registry/index.js";
import type { RuntimeConfig } from "../mesh/runtime/index.js";
import { DEFAULT_CONVERGENCE_DELAY_MS } from "../mesh/server/index.js";
import { createLogger, currentTelemetry, observeRegistration, startMetricsServer, startTelemetry, type Logger } from "../mesh/telemetry/index.js";
import type { GatewayConfig } from "./config.js";
import type { TransportFactory } from "./forward.js";
import { build, depsFromConfig, type Gateway, type GatewayDeps } from "./server.js";

/** The logical service name the gateway registers under. */
export const GATEWAY_SERVICE = "gateway";

/** Options for {@link runGateway}. */
export interface RunGatewayOptions {
  /** Gateway settings (gateway/config.ts). */
  config: GatewayConfig;
  /** Runtime settings read as for every mesh process: instance id, version, metrics host, advertised host, registry TTL. */
  runtime: RuntimeConfig;
  /** Backend transports (the mesh's discovery-backed ones in production). */
  transportFor: TransportFactory;
  /** Registers the gateway in this etcd when given. */
  etcd?: Etcd3;
  /** Default: a pino logger for service "gateway" on stdout (LOG_LEVEL). */
  logger?: Logger;
  /** Replaces parts of the deps built from `config` (tests, the bench). */
  overrides?: Partial<GatewayDeps>;
}

/** A gateway that is listening, observed and (when an etcd was given) registered. */
export interface RunningGateway {
  readonly gateway: Gateway;
  readonly port: number;
  /** "host:port" of /metrics, /spans and /metrics/summary (published as `metadata.metrics`). */
  readonly metricsAddress: string;
  readonly registration: Registration | undefined;
  readonly logger: Logger;
  /** Deregisters, waits for watchers to converge, closes the gateway, metrics and telemetry; idempotent. Transports stay open. */
  stop(): Promise<void>;
}

const WILDCARD = new Set(["0.0.0.0", "::", ""]);

/**
 * Starts the gateway as a mesh process, like mesh/runtime's runService does for a gRPC service:
 * telemetry first (OpenTelemetry SDK, in-memory recent spans, Prometheus /metrics on its own
 * port), then the gateway with a server span, HTTP metrics and an access-log line per request,
 * then — with `etcd` — a registry entry for service "gateway" with `metadata.metrics`, so the
 * console lists it and health-checks it over gRPC (the gateway serves grpc.health.v1).
 */
export async function runGateway(opts: RunGatewayOptions): Promise<RunningGateway> {
  const { config, runtime } = opts;
  // Telemetry may have been started first thing in main.ts (or by a test): then its owner stops it.
  const started = currentTelemetry();
  const telemetry = started ?? startTelemetry({ serviceName: GATEWAY_SERVICE, instanceId: runtime.instanceId, version: runtime.version });
  const logger = opts.logger ?? createLogger({ service: GATEWAY_SERVICE, instance: runtime.instanceId });
  const metrics = await startMetricsServer({ telemetry, host: runtime.host });
  const gateway = build({ ...depsFromConfig(config, opts.transportFor), logger, ...opts.overrides });
  let port: number;
  try {
    port = await gateway.listen(config.port, config.host);
  } catch (e) {
    await metrics.close();
    throw e;
  }
  // Reachable where the gateway listens: its own host unless that is a wildcard, else the mesh's
  // advertised host (MESHWORK_ADVERTISE_HOST or the hostname).
  const address = process.env.MESHWORK_ADVERTISE_HOST?.trim() || (WILDCARD.has(config.host) ? (WILDCARD.has(runtime.host) ? hostname() : runtime.advertiseHost) : config.host);
  const metricsAddress = `${runtime.advertiseHost}:${metrics.port}`;
  let registration: Registration | undefined;
  let unobserve = () => undefined as unknown;
  if (opts.etcd) {
    registration = new Registration(
      opts.etcd,
      {
        service: GATEWAY_SERVICE,
        instance: runtime.instanceId,
        address,
        port,
        protocols: ["http", "connect", "grpc-web", "grpc"],
        version: runtime.version,
        zone: runtime.zone,
        startedAt: new Date().toISOString(),
        metadata: { pid: String(process.pid), metrics: metricsAddress },
      },
      { ttlSeconds: runtime.registryTtlSeconds },
    );
    registration.on("lost", (e) => logger.warn({ err: e }, "registration lost; registering again"));
    unobserve = observeRegistration(registration);
  }
  logger.info({ port, host: config.host, metrics: metricsAddress, fastPath: config.fastPath }, "gateway listening");
  let stopping: Promise<void> | undefined;
  const stop = () =>
    (stopping ??= (async () => {
      if (registration) {
        try {
          await registration.deregister();
          // Watchers (the console) drop the entry before the port stops answering.
          await new Promise((r) => setTimeout(r, DEFAULT_CONVERGENCE_DELAY_MS));
        } catch (e) {
          logger.warn({ err: e }, `deregistration failed; the key expires after ${runtime.registryTtlSeconds} s`);
          await registration.close();
        }
      }
      await gateway.close();
      unobserve();
      await metrics.close();
      if (!started) await telemetry.shutdown();
    })());
  if (registration) {
    try {
      await registration.whenRegistered();
    } catch (e) {
      if (!stopping) {
        await stop();
        throw e;
      }
    }
  }
  return { gateway, port, metricsAddress, registration, logger, stop };
}
