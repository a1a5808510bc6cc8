import { resolve } from "node:path";
import { parseArgs } from "node:util";
import { startLocalMesh, type LocalMesh, type LocalMeshOptions } from "./launcher.js";
import { inLauncherSession, runInOwnSession } from "./session.js";
import { parseReplicas, SHOP_SERVICES } from "./shop.js";
import { formatTable } from "./table.js";
import { UP_USAGE, UsageError } from "./usage.js";

function port(name: string, raw: string | undefined): number | undefined {
  if (raw === undefined || raw.trim() === "") return undefined;
  const n = Number(raw);
  if (!Number.isInteger(n) || n < 0 || n > 65535) throw new UsageError(`${name} must be a port number (0-65535), got '${raw}'`);
  return n;
}

/** The launcher options `meshwork up` / `npm start` take from flags, then the environment. */
export function parseUpArgs(argv: string[], env: NodeJS.ProcessEnv): LocalMeshOptions & { help?: boolean } {
  let values;
  try {
    ({ values } = parseArgs({
      args: argv,
      options: {
        replicas: { type: "string" },
        "data-dir": { type: "string" },
        "gateway-port": { type: "string" },
        "etcd-port": { type: "string" },
        "nats-port": { type: "string" },
        etcd: { type: "string" },
        nats: { type: "string" },
        help: { type: "boolean", short: "h" },
      },
    }));
  } catch (e) {
    throw new UsageError((e as Error).message);
  }
  if (values.help) return { help: true };
  const replicasText = values.replicas ?? env.MESHWORK_REPLICAS;
  let replicas: Record<string, number> | undefined;
  try {
    replicas = replicasText ? parseReplicas(replicasText, SHOP_SERVICES.map((s) => s.name)) : undefined;
  } catch (e) {
    throw new UsageError((e as Error).message);
  }
  return {
    replicas,
    dataDir: values["data-dir"] ?? (env.MESHWORK_DATA_DIR?.trim() || undefined),
    ports: {
      gateway: port("--gateway-port / MESHWORK_GATEWAY_PORT", values["gateway-port"] ?? env.MESHWORK_GATEWAY_PORT),
      etcd: port("--etcd-port / MESHWORK_ETCD_PORT", values["etcd-port"] ?? env.MESHWORK_ETCD_PORT),
      nats: port("--nats-port / MESHWORK_NATS_PORT", values["nats-port"] ?? env.MESHWORK_NATS_PORT),
    },
    etcdEndpoints: values.etcd ?? (env.ETCD_ENDPOINTS?.trim() || undefined),
    natsUrl: values.nats ?? (env.NATS_URL?.trim() || undefined),
  };
}

/** The text printed once the mesh is ready: instances, URLs and three calls to try. */
export function readyBanner(mesh: LocalMesh): string {
  const rows = [["SERVICE", "INSTANCE", "ADDRESS", "PID"], ...mesh.services.map((s) => [s.service, s.instance, `${s.address}:${s.port}`, String(s.pid)])];
  const table = formatTable(rows, { gap: 3, indent: "  " });
  const gw = mesh.gatewayUrl ?? "(no gateway)";
  const catalog = mesh.services.find((s) => s.service === "catalog");
  const lines = [
    "",
    `Meshwork is ready in ${mesh.readyMs} ms.`,
    "",
    table,
    "",
    `  Gateway   ${gw}   (REST, Connect, gRPC-Web and gRPC on one port; ${gw}/openapi.json)`,
    `  Console   ${mesh.consoleUrl ?? "(no console)"}   (services, health, RED metrics, breakers, outbox/DLQ, trace waterfalls)`,
    `  etcd      ${mesh.etcdEndpoints}`,
    `  NATS      ${mesh.natsUrl}`,
    `  Data      ${mesh.dataDir}`,
    "",
    "Try:",
    `  curl -s '${gw}/v1/products?page_size=3'`,
    `  curl -s -X POST ${gw}/catalog.v1.CatalogService/ListProducts -H 'content-type: application/json' -d '{"pageSize": 3}'`,
  ];
  if (catalog) {
    lines.push(`  npx buf curl --protocol grpc --http2-prior-knowledge -d '{"id": "prod-001"}' http://${catalog.address}:${catalog.port}/catalog.v1.CatalogService/GetProduct`);
  }
  lines.push(
    "",
    `Orders need a token: npx meshwork token --sub alice --scope "orders:read orders:write notifications:read"${mesh.dataDir === resolve(".data") ? "" : ` --data-dir ${mesh.dataDir}`}`,
    "Press Ctrl-C to stop: services drain, data stays in the data directory.",
    "",
  );
  return lines.join("\n");
}

/**
 * Starts the mesh, prints the banner, waits for SIGINT/SIGTERM/SIGHUP (or the parent's
 * disappearance), stops everything and resolves with the exit code: 0 when every process
 * drained and exited 0, 1 otherwise.
 */
async function runUp(opts: LocalMeshOptions): Promise<number> {
  const say = (msg: string) => process.stderr.write(`[meshwork] ${msg}\n`);
  const cancel = new AbortController();
  let onStop: (() => void) | undefined;
  const stopRequested = new Promise<void>((resolve) => (onStop = resolve));
  let requested = false;
  const request = (why: string) => {
    if (requested) {
      // Relayed duplicates (npm, tsx and the terminal may each pass Ctrl-C on) must not cut the
      // drain short; it is bounded anyway by each process's stop grace.
      say(`${why}: already stopping`);
      return;
    }
    requested = true;
    say(`${why}: stopping`);
    cancel.abort();
    onStop!();
  };
  const onSignal = (s: NodeJS.Signals) => request(s);
  const onDisconnect = () => request("the parent process is gone");
  for (const s of ["SIGINT", "SIGTERM", "SIGHUP"] as const) process.on(s, onSignal);
  process.on("disconnect", onDisconnect);
  try {
    let mesh: LocalMesh;
    try {
      mesh = await startLocalMesh({ ...opts, signal: cancel.signal });
    } catch (e) {
      if (requested) {
        say("start cancelled; everything started has been stopped");
        return 0;
      }
      say(`start failed: ${(e as Error).message}`);
      return 1;
    }
    if (!requested) process.stdout.write(readyBanner(mesh));
    await stopRequested;
    const report = await mesh.stop();
    const bad = report.processes.filter((p) => p.code !== 0 || p.killed);
    if (bad.length > 0) say(`not every process stopped cleanly: ${bad.map((p) => `${p.name} (${p.signal ?? `code ${p.code}`}${p.killed ? ", killed" : ""})`).join(", ")}`);
    else say("stopped; every process exited 0");
    return report.clean ? 0 : 1;
  } finally {
    for (const s of ["SIGINT", "SIGTERM", "SIGHUP"] as const) process.off(s, onSignal);
    process.off("disconnect", onDisconnect);
    if (process.connected) process.disconnect();
  }
}

/**
 * The `npm start` / `meshwork up` program. Run from a terminal (or anywhere) it re-runs
 * `entryFile argv` as the leader of its own process group (see session.ts) and relays signals;
 * inside that group it runs the mesh. `extra` overrides options (tests use it for fixtures).
 */
export async function upMain(entryFile: string, entryArgs: string[], upArgv: string[], extra: Partial<LocalMeshOptions> = {}): Promise<number> {
  let opts;
  try {
    opts = parseUpArgs(upArgv, process.env);
  } catch (e) {
    if (!(e instanceof UsageError)) throw e;
    process.stderr.write(`meshwork up: ${e.message}\n\n${UP_USAGE}`);
    return 2;
  }
  if (opts.help) {
    process.stdout.write(UP_USAGE);
    return 0;
  }
  if (!inLauncherSession()) return runInOwnSession(entryFile, entryArgs);
  return runUp({ ...opts, ...extra });
}
