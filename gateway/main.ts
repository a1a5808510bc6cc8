import { Mesh, readRuntimeConfig } from "../mesh/runtime/index.js";
import { startTelemetry } from "../mesh/telemetry/index.js";
import { loadConfig } from "./config.js";
import { GATEWAY_SERVICE, runGateway } from "./run.js";

/**
 * The gateway process: configuration from the environment (see gateway/config.ts; ETCD_ENDPOINTS,
 * MESHWORK_INSTANCE_ID, MESHWORK_HOST for /metrics etc. as for every mesh process), telemetry
 * started before anything else, services found through etcd discovery by their logical name (the
 * first package segment: "catalog" for catalog.v1.CatalogService), registered as service
 * "gateway", graceful stop on SIGTERM/SIGINT (a second signal exits at once).
 */
async function main(): Promise<void> {
  const runtime = readRuntimeConfig(GATEWAY_SERVICE);
  const config = loadConfig();
  const telemetry = startTelemetry({ serviceName: GATEWAY_SERVICE, instanceId: runtime.instanceId, version: runtime.version });
  const mesh = new Mesh({ etcdEndpoints: runtime.etcdEndpoints });
  const running = await runGateway({ config, runtime, transportFor: (typeName) => mesh.transport(typeName.split(".")[0]), etcd: mesh.etcd });
  const log = running.logger;
  let stopping = false;
  const stop = (signal: NodeJS.Signals) => {
    if (stopping) process.exit(1);
    stopping = true;
    log.info({ signal }, "gateway stopping");
    running
      .stop()
      .then(() => mesh.close())
      .then(() => telemetry.shutdown())
      .then(
        () => process.exit(0),
        (e: unknown) => {
          log.error({ err: e }, "gateway stop failed");
          process.exit(1);
        },
      );
  };
  process.on("SIGTERM", stop);
  process.on("SIGINT", stop);
}

main().catch((e: unknown) => {
  process.stderr.write(`gateway: ${(e as Error).message}\n`);
  process.exit(1);
});
