/**
 * `npm start`: the local mesh. Starts etcd and NATS JetStream with their data under .data/ (kept
 * between runs) on documented ports, or reuses external ones given by ETCD_ENDPOINTS / NATS_URL,
 * then stays up until Ctrl-C and stops everything it started.
 */
import { mkdirSync } from "node:fs";
import { join } from "node:path";
import { startEtcd, startNats, type EtcdServer, type NatsServer } from "../mesh/infra/index.js";

function intFromEnv(name: string, fallback: number): number {
  const raw = process.env[name];
  if (raw === undefined || raw === "") return fallback;
  const n = Number(raw);
  if (!Number.isInteger(n) || n < 0 || n > 65535) throw new Error(`${name} must be a port number, got '${raw}'`);
  return n;
}

async function main(): Promise<void> {
  const dataDir = process.env.MESHWORK_DATA_DIR ?? join(process.cwd(), ".data");
  // Ports one above the standard ones, so a system etcd/NATS on 2379/4222 does not collide.
  const etcdPort = intFromEnv("MESHWORK_ETCD_PORT", 2479);
  const natsPort = intFromEnv("MESHWORK_NATS_PORT", 4322);
  let etcd: EtcdServer | undefined;
  let nats: NatsServer | undefined;
  const etcdEndpoints = process.env.ETCD_ENDPOINTS;
  const natsUrl = process.env.NATS_URL;
  if (!etcdEndpoints) {
    mkdirSync(join(dataDir, "etcd"), { recursive: true });
    process.stderr.write(`starting etcd on 127.0.0.1:${etcdPort} (data in ${dataDir}/etcd)\n`);
    etcd = await startEtcd({ dataDir: join(dataDir, "etcd"), clientPort: etcdPort, peerPort: etcdPort + 1 });
  }
  if (!natsUrl) {
    mkdirSync(join(dataDir, "nats"), { recursive: true });
    process.stderr.write(`starting nats-server -js on 127.0.0.1:${natsPort} (data in ${dataDir}/nats)\n`);
    nats = await startNats({ storeDir: join(dataDir, "nats"), port: natsPort, monitorPort: natsPort + 1 });
  }
  console.log("Meshwork infrastructure is running:");
  console.log(`  etcd   ${etcdEndpoints ?? etcd!.endpoint}`);
  console.log(`  NATS   ${natsUrl ?? nats!.url}`);
  console.log("Press Ctrl-C to stop.");
  let stopping = false;
  const stop = async () => {
    if (stopping) return;
    stopping = true;
    await nats?.stop({ keepData: true });
    await etcd?.stop({ keepData: true });
    process.exit(0);
  };
  process.on("SIGINT", () => void stop());
  process.on("SIGTERM", () => void stop());
}

main().catch((e: unknown) => {
  console.error(e instanceof Error ? e.message : e);
  process.exit(1);
});
