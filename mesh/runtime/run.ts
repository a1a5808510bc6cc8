import { runUntilSignal, type MeshServer } from "../server/index.js";
import { Registration } from "../registry/index.js";
import { currentTelemetry, observeRegistration, startMetricsServer, startTelemetry } from "../telemetry/index.js";
import type { RuntimeConfig } from "./config.js";
import type { Mesh } from "./mesh.js";

/** Options for {@link runService}. */
export interface RunServiceOptions {
  config: RuntimeConfig;
  mesh: Mesh;
  server: MeshServer;
  /** Extra metadata published in the registry entry (e.g. the metrics address). */
  metadata?: Record<string, string>;
  /** Runs after the server has drained: stop relays and consumers, close the database. */
  onShutdown?: () => Promise<void>;
  /** Install SIGTERM/SIGINT handlers that drain and exit (default true; tests run in-process with false). */
  handleSignals?: boolean;
  /** Called with each drain step, for logs. */
  log?: (msg: string) => void;
}

/** A service that is listening, registered and ready. */
export interface RunningService {
  readonly port: number;
  readonly registration: Registration;
  /** The graceful shutdown sequence; resolves when everything is closed (does not exit the process). */
  stop(): Promise<void>;
}

/**
 * Starts a built service: listen, register in etcd, mark SERVING, and on SIGTERM/SIGINT drain
 * (NOT_SERVING → deregister → wait for watchers → GOAWAY → in-flight calls finish) and exit 0.
 * A second signal during the drain exits 1 at once.
 */
export async function runService(opts: RunServiceOptions): Promise<RunningService> {
  const { config, mesh, server } = opts;
  const log = opts.log ?? ((m: string) => process.stderr.write(`[${config.instanceId}] ${m}\n`));
  // Telemetry may have been started first thing in main.ts; otherwise start it here so every
  // service serves /metrics and /spans and publishes where in its registry entry.
  const telemetry = currentTelemetry() ?? startTelemetry({ serviceName: config.serviceName, instanceId: config.instanceId, version: config.version });
  const metrics = await startMetricsServer({ telemetry, host: config.host });
  const port = await server.listen(config.port, config.host);
  const registration = new Registration(
    mesh.etcd,
    {
      service: config.serviceName,
      instance: config.instanceId,
      address: config.advertiseHost,
      port,
      protocols: ["grpc"],
      version: config.version,
      zone: config.zone,
      startedAt: new Date().toISOString(),
      metadata: { pid: String(process.pid), metrics: `${config.advertiseHost}:${metrics.port}`, ...opts.metadata },
    },
    { ttlSeconds: config.registryTtlSeconds },
  );
  registration.on("lost", (e) => log(`registration lost (${e.message}); registering again`));
  const unobserve = observeRegistration(registration);

  const hooks = {
    graceMs: config.drainGraceMs,
    deregister: async () => {
      try {
        await registration.deregister();
      } catch (e) {
        // etcd unreachable: the key expires with its lease instead.
        log(`deregistration failed (${(e as Error).message}); the key expires after ${config.registryTtlSeconds} s`);
        await registration.close();
      }
    },
  };
  const afterDrain = async () => {
    await opts.onShutdown?.();
    await mesh.close();
    unobserve();
    await metrics.close();
    await telemetry.shutdown();
  };
  let stopping: Promise<void> | undefined;
  let signalled = false;
  const stop = () => (stopping ??= server.drain(hooks).then(afterDrain));
  // Installed before waiting for the registration: a SIGTERM during startup must drain, not kill.
  if (opts.handleSignals !== false) {
    runUntilSignal(server, {
      hooks,
      afterDrain,
      onSignal: (sig) => {
        signalled = true;
        log(`${sig}: draining`);
      },
    });
  }
  try {
    await registration.whenRegistered();
  } catch (e) {
    // Closed by a drain that started before the first registration: the signal handler exits.
    if (signalled || stopping) return { port, registration, stop };
    throw e;
  }
  server.markReady();
  log(`serving ${config.serviceName} on ${config.advertiseHost}:${port}`);
  return { port, registration, stop };
}
