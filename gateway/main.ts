import pino from "pino";
import { Mesh, readRuntimeConfig } from "../mesh/runtime/index.js";
import { loadConfig } from "./config.js";
import { build, depsFromConfig } from "./server.js";

/**
 * The gateway process: configuration from the environment (see gateway/config.ts; ETCD_ENDPOINTS
 * as for every mesh process), services found through etcd discovery by their logical name (the
 * first package segment: "catalog" for catalog.v1.CatalogService), graceful stop on SIGTERM/SIGINT.
 */
async function main(): Promise<void> {
  const log = pino({ name: "gateway" });
  const config = loadConfig();
  const mesh = new Mesh({ etcdEndpoints: readRuntimeConfig("gateway").etcdEndpoints });
  const gateway = build({ ...depsFromConfig(config, (typeName) => mesh.transport(typeName.split(".")[0])), logger: log });
  const port = await gateway.listen(config.port, config.host);
  log.info({ port, host: config.host, fastPath: config.fastPath }, "gateway listening");
  let stopping = false;
  const stop = (signal: NodeJS.Signals) => {
    if (stopping) process.exit(1);
    stopping = true;
    log.info({ signal }, "gateway stopping");
    gateway
      .close()
      .then(() => mesh.close())
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
