/**
 * The mesh console process. Environment:
 * - ETCD_ENDPOINTS (required): comma-separated http(s)://host:port URLs of the registry's etcd;
 * - MESHWORK_CONSOLE_PORT: default 8090;
 * - MESHWORK_CONSOLE_HOST: default 127.0.0.1 (the console has no login: loopback unless asked);
 * - MESHWORK_CONSOLE_POLL_MS: default 2 000;
 * - MESHWORK_MESH_NAME: shown in the header, default "meshwork".
 */
import { createEtcdClient } from "../mesh/etcd/client.js";
import { envInt, envRequired, envString } from "../mesh/runtime/config.js";
import { build } from "./server.js";

/** The console's settings, parsed once; throws naming the bad variable. */
export interface ConsoleConfig {
  etcdEndpoints: string[];
  host: string;
  port: number;
  pollIntervalMs: number;
  meshName: string;
}

/** Reads {@link ConsoleConfig} from `env`. */
export function readConsoleConfig(env: NodeJS.ProcessEnv = process.env): ConsoleConfig {
  const etcdEndpoints = envRequired(env, "ETCD_ENDPOINTS").split(",").map((s) => s.trim()).filter(Boolean);
  for (const e of etcdEndpoints) {
    if (!/^https?:\/\/[^/\s]+$/.test(e)) throw new Error(`ETCD_ENDPOINTS must be comma-separated http(s)://host:port URLs, got '${e}'`);
  }
  return {
    etcdEndpoints,
    host: envString(env, "MESHWORK_CONSOLE_HOST") ?? "127.0.0.1",
    // 8090: next to the usual 8080 of a gateway, clear of etcd (2379/2479) and NATS (4222).
    port: envInt(env, "MESHWORK_CONSOLE_PORT", 8090, 0, 65535),
    // 2 s: a kill shows within a poll or two of the registry TTL, and a mesh of ~30 instances
    // costs the console ~60 small requests a second; 250 ms floor keeps it from hammering them.
    pollIntervalMs: envInt(env, "MESHWORK_CONSOLE_POLL_MS", 2_000, 250, 60_000),
    meshName: envString(env, "MESHWORK_MESH_NAME") ?? "meshwork",
  };
}

async function main(): Promise<void> {
  const config = readConsoleConfig();
  const etcd = createEtcdClient(config.etcdEndpoints);
  const consoleServer = build({ etcd, pollIntervalMs: config.pollIntervalMs, meshName: config.meshName });
  const port = await consoleServer.listen(config.port, config.host);
  const shown = config.host.includes(":") ? `[${config.host}]` : config.host;
  process.stdout.write(`console listening on http://${shown}:${port}/\n`);
  let stopping = false;
  const stop = (signal: NodeJS.Signals) => {
    if (stopping) process.exit(1);
    stopping = true;
    process.stderr.write(`${signal}: closing\n`);
    void consoleServer.close().then(() => {
      etcd.close();
      process.exit(0);
    });
  };
  process.on("SIGTERM", stop);
  process.on("SIGINT", stop);
}

if (require.main === module) {
  main().catch((e: unknown) => {
    process.stderr.write(`console: ${e instanceof Error ? e.message : String(e)}\n`);
    process.exit(1);
  });
}
