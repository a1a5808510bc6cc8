/**
 * The `meshwork` command line: ls, call, token, dlq, up. `meshwork --help` and
 * `meshwork <command> --help` describe each. Exit codes: 0 success, 1 failure (an RPC error, an
 * unreachable etcd/NATS), 2 usage error.
 */
import { fromBinary, fromJson, toJson, type DescMethod, type DescMethodStreaming, type DescMethodUnary, type JsonValue, type Registry } from "@bufbuild/protobuf";
import { Code, ConnectError } from "@connectrpc/connect";
import { resolve } from "node:path";
import { parseArgs, type ParseArgsConfig } from "node:util";
import { formatTable } from "./local-mesh/table.js";
import { UP_USAGE, UsageError } from "./local-mesh/usage.js";

// Each command loads its heavy modules itself (etcd3 alone takes ~0.9 s to load): `meshwork token`
// should not wait for an etcd client it never uses.
const lazy = {
  etcd: () => require("../mesh/etcd/client.js") as typeof import("../mesh/etcd/client.js"),
  instances: () => require("./local-mesh/instances.js") as typeof import("./local-mesh/instances.js"),
  runtime: () => require("../mesh/runtime/index.js") as typeof import("../mesh/runtime/index.js"),
  descriptors: () => require("./local-mesh/descriptors.js") as typeof import("./local-mesh/descriptors.js"),
  devToken: () => require("../gateway/dev-token.js") as typeof import("../gateway/dev-token.js"),
  devSecrets: () => require("./local-mesh/dev-secrets.js") as typeof import("./local-mesh/dev-secrets.js"),
  nats: () => require("nats") as typeof import("nats"),
  dlq: () => require("../mesh/events/dlq.js") as typeof import("../mesh/events/dlq.js"),
  up: () => require("./local-mesh/up-command.js") as typeof import("./local-mesh/up-command.js"),
};

// The local mesh's etcd and NATS (scripts/up.ts), one above the standard ports.
const DEFAULT_ETCD = "http://127.0.0.1:2479";
const DEFAULT_NATS = "nats://127.0.0.1:4322";
// The slowest contract deadline (orders.v1 CreateOrder) is 10 s: any unary call fits.
const DEFAULT_CALL_TIMEOUT_MS = 10_000;

const USAGE = `usage: meshwork <command> [options]

commands:
  ls                              instances registered in etcd, with health, version and address
  call <Service>/<Method> [JSON]  call a method through discovery; prints the response as JSON
  token --sub ID --scope "..."    a development JWT the local gateway accepts
  dlq list | dlq redrive <seq...> dead-lettered events in NATS JetStream
  up                              the local mesh (same as npm start)

Run 'meshwork <command> --help' for a command's options.
`;

const LS_USAGE = `usage: meshwork ls [--json] [--etcd URLS]

Lists every instance registered under /meshwork/services/ with the answer of its
grpc.health.v1 Check, its version and address.
  --json         one JSON array instead of a table
  --etcd URLS    comma-separated etcd URLs (env ETCD_ENDPOINTS; default ${DEFAULT_ETCD})
`;

const CALL_USAGE = `usage: meshwork call <package.Service/Method | Service/Method> ['<request JSON>'] [options]

Finds the service through etcd discovery (service name = first package segment, e.g. catalog),
encodes the request from the generated descriptors and prints the response as JSON. A
server-streaming method prints one JSON line per message until Ctrl-C or --max messages.
  --etcd URLS        comma-separated etcd URLs (env ETCD_ENDPOINTS; default ${DEFAULT_ETCD})
  --timeout MS       deadline of a unary call (default ${DEFAULT_CALL_TIMEOUT_MS}); streams have none
  --max N            stop a stream after N messages
  -H, --header K:V   request metadata, repeatable
example:
  meshwork call catalog.v1.CatalogService/GetProduct '{"id": "prod-001"}'
`;

const TOKEN_USAGE = `usage: meshwork token --sub ID [--scope "a:read b:write"] [--ttl 1h] [options]

Prints an HS256 development JWT signed with the local mesh's key: --secret, else
MESHWORK_JWT_SECRET, else the key npm start created in <data dir>/dev-secrets.json.
  --sub ID         the caller (sub claim), e.g. a customer id; required
  --scope LIST     space-separated scopes, e.g. "orders:read orders:write"
  --ttl DURATION   lifetime: 90s, 15m, 1h, 2d or plain seconds (default 1h)
  --secret S       signing secret (at least 32 bytes)
  --data-dir DIR   where the local mesh keeps its data (env MESHWORK_DATA_DIR; default ./.data)
  --iss / --aud    issuer and audience claims (env MESHWORK_JWT_ISSUER / MESHWORK_JWT_AUDIENCE)
`;

const DLQ_USAGE = `usage: meshwork dlq list [--limit N] [--json] [--nats URL]
       meshwork dlq redrive <seq...> [--nats URL]

list shows dead-lettered events, oldest first; redrive republishes them to their original
subjects and deletes them from the dead-letter stream.
  --nats URL   NATS server (env NATS_URL; default ${DEFAULT_NATS})
  --limit N    at most N entries (default 100)
  --json       one JSON object per line
`;

/** Parses `argv` strictly; a mistake becomes a {@link UsageError}. */
function parse<T extends ParseArgsConfig["options"]>(argv: string[], options: T, positionals = false) {
  try {
    return parseArgs({ args: argv, options: { ...options, help: { type: "boolean", short: "h" } }, allowPositionals: positionals, strict: true });
  } catch (e) {
    throw new UsageError((e as Error).message);
  }
}

function etcdEndpoints(flag: string | undefined): string {
  return flag ?? (process.env.ETCD_ENDPOINTS?.trim() || DEFAULT_ETCD);
}

function out(text: string): void {
  process.stdout.write(text.endsWith("\n") ? text : text + "\n");
}

/** Prints `text` and gives the success exit code. */
function printed(text: string): number {
  out(text);
  return 0;
}

async function ls(argv: string[]): Promise<number> {
  const { values } = parse(argv, { json: { type: "boolean" }, etcd: { type: "string" } });
  if (values.help) return printed(LS_USAGE);
  const etcd = lazy.etcd().createEtcdClient(etcdEndpoints(values.etcd as string | undefined));
  try {
    const list = await lazy.instances().instanceStatuses(etcd, { onInvalid: (key, err) => process.stderr.write(`skipping ${key}: ${err.message}\n`) });
    if (values.json) return printed(JSON.stringify(list, null, 2));
    if (list.length === 0) return printed("no instances registered");
    const rows = [
      ["SERVICE", "INSTANCE", "HEALTH", "VERSION", "ADDRESS", "STARTED"],
      ...list.map((i) => [i.service, i.instance, i.health, i.version, `${i.address}:${i.port}`, i.startedAt]),
    ];
    out(formatTable(rows));
    for (const i of list) if (i.healthError) process.stderr.write(`${i.instance}: health check failed: ${i.healthError}\n`);
    return 0;
  } finally {
    etcd.close();
  }
}

/** Prints a ConnectError as `Code: message` plus its decoded details on stderr. */
function printRpcError(err: ConnectError, registry: Registry): void {
  process.stderr.write(`error: ${Code[err.code]} (${err.code}): ${err.rawMessage}\n`);
  for (const d of err.details) {
    if (!("type" in d)) continue;
    const desc = registry.getMessage(d.type);
    let json: JsonValue;
    try {
      json = desc ? toJson(desc, fromBinary(desc, d.value), { registry }) : { type: d.type, base64: Buffer.from(d.value).toString("base64") };
    } catch {
      json = { type: d.type, undecodable: true };
    }
    process.stderr.write(`detail ${d.type}: ${JSON.stringify(json)}\n`);
  }
}

async function call(argv: string[]): Promise<number> {
  const { values, positionals } = parse(
    argv,
    { etcd: { type: "string" }, timeout: { type: "string" }, max: { type: "string" }, header: { type: "string", short: "H", multiple: true } },
    true,
  );
  if (values.help) return printed(CALL_USAGE);
  if (positionals.length < 1 || positionals.length > 2) throw new UsageError("call takes a method and at most one JSON request");
  const timeoutMs = values.timeout === undefined ? DEFAULT_CALL_TIMEOUT_MS : Number(values.timeout);
  if (!Number.isInteger(timeoutMs) || timeoutMs <= 0) throw new UsageError(`--timeout must be a positive number of ms, got '${String(values.timeout)}'`);
  const max = values.max === undefined ? undefined : Number(values.max);
  if (max !== undefined && (!Number.isInteger(max) || max <= 0)) throw new UsageError(`--max must be a positive integer, got '${String(values.max)}'`);
  const headers = new Headers();
  for (const h of (values.header as string[] | undefined) ?? []) {
    const i = h.indexOf(":");
    if (i <= 0) throw new UsageError(`--header must look like key:value, got '${h}'`);
    headers.append(h.slice(0, i).trim(), h.slice(i + 1).trim());
  }
  const { findMethod, loadContracts, MethodLookupError } = lazy.descriptors();
  const { registry, services } = loadContracts();
  let method: DescMethod;
  try {
    method = findMethod(services, positionals[0]);
  } catch (e) {
    if (e instanceof MethodLookupError) throw new UsageError(e.message);
    throw e;
  }
  if (method.methodKind !== "unary" && method.methodKind !== "server_streaming") throw new UsageError(`${method.parent.typeName}/${method.name} is ${method.methodKind.replace("_", " ")}; only unary and server-streaming methods can be called`);
  let json: JsonValue;
  try {
    json = JSON.parse(positionals[1] ?? "{}") as JsonValue;
  } catch (e) {
    throw new UsageError(`the request is not JSON: ${(e as Error).message}`);
  }
  let input;
  try {
    input = fromJson(method.input, json, { registry });
  } catch (e) {
    throw new UsageError(`the request is not a valid ${method.input.typeName}: ${(e as Error).message}`);
  }
  const mesh = new (lazy.runtime().Mesh)({ etcdEndpoints: etcdEndpoints(values.etcd as string | undefined).split(",") });
  const transport = mesh.transport(method.parent.typeName.split(".")[0]);
  const abort = new AbortController();
  const onSigint = () => abort.abort();
  process.once("SIGINT", onSigint);
  try {
    if (method.methodKind === "unary") {
      const res = await transport.unary(method as DescMethodUnary, abort.signal, timeoutMs, headers, input);
      out(JSON.stringify(toJson(method.output, res.message, { registry }), null, 2));
      return 0;
    }
    const res = await transport.stream(method as DescMethodStreaming, abort.signal, undefined, headers, (async function* () {
      yield input;
    })());
    let n = 0;
    for await (const m of res.message) {
      out(JSON.stringify(toJson(method.output, m, { registry })));
      if (max !== undefined && ++n >= max) {
        abort.abort();
        break;
      }
    }
    return 0;
  } catch (e) {
    // Ctrl-C or --max on a stream is how it is meant to end.
    if (abort.signal.aborted && method.methodKind === "server_streaming") return 0;
    printRpcError(ConnectError.from(e), registry);
    return 1;
  } finally {
    process.off("SIGINT", onSigint);
    await mesh.close();
  }
}

/** Seconds in a duration like 90s, 15m, 1h, 2d or a plain number of seconds. */
export function parseDuration(text: string): number {
  const m = /^(\d+)([smhd]?)$/.exec(text.trim());
  if (!m) throw new UsageError(`--ttl must look like 90s, 15m, 1h, 2d or plain seconds, got '${text}'`);
  const unit: Record<string, number> = { "": 1, s: 1, m: 60, h: 3600, d: 86_400 };
  const sec = Number(m[1]) * unit[m[2]];
  if (sec <= 0) throw new UsageError(`--ttl must be positive, got '${text}'`);
  return sec;
}

async function token(argv: string[]): Promise<number> {
  const { values } = parse(argv, {
    sub: { type: "string" },
    scope: { type: "string" },
    ttl: { type: "string" },
    secret: { type: "string" },
    "data-dir": { type: "string" },
    iss: { type: "string" },
    aud: { type: "string" },
  });
  if (values.help) return printed(TOKEN_USAGE);
  const sub = values.sub as string | undefined;
  if (!sub) throw new UsageError("--sub is required");
  const ttlSec = parseDuration((values.ttl as string | undefined) ?? "1h");
  const dataDir = resolve((values["data-dir"] as string | undefined) ?? (process.env.MESHWORK_DATA_DIR?.trim() || ".data"));
  const secret = (values.secret as string | undefined) ?? (process.env.MESHWORK_JWT_SECRET?.trim() || lazy.devSecrets().readDevSecrets(dataDir)?.jwtSecret);
  if (!secret) {
    process.stderr.write(`meshwork token: no signing key: pass --secret, set MESHWORK_JWT_SECRET, or start the local mesh once (it writes ${dataDir}/dev-secrets.json)\n`);
    return 1;
  }
  const jwt = await lazy.devToken().mintDevToken({
    secret,
    subject: sub,
    scopes: ((values.scope as string | undefined) ?? "").split(/\s+/).filter(Boolean),
    ttlSec,
    issuer: (values.iss as string | undefined) ?? (process.env.MESHWORK_JWT_ISSUER?.trim() || undefined),
    audience: (values.aud as string | undefined) ?? (process.env.MESHWORK_JWT_AUDIENCE?.trim() || undefined),
  });
  out(jwt);
  return 0;
}

async function dlq(argv: string[]): Promise<number> {
  const { values, positionals } = parse(argv, { nats: { type: "string" }, limit: { type: "string" }, json: { type: "boolean" } }, true);
  if (values.help) return printed(DLQ_USAGE);
  const [sub, ...rest] = positionals;
  if (sub !== "list" && sub !== "redrive") throw new UsageError(`dlq needs 'list' or 'redrive', got '${sub ?? ""}'`);
  const limit = values.limit === undefined ? undefined : Number(values.limit);
  if (limit !== undefined && (!Number.isInteger(limit) || limit <= 0)) throw new UsageError(`--limit must be a positive integer, got '${String(values.limit)}'`);
  if (sub === "list" && rest.length > 0) throw new UsageError("dlq list takes no arguments");
  const seqs = rest.map(Number);
  if (sub === "redrive" && (seqs.length === 0 || seqs.some((s) => !Number.isInteger(s) || s <= 0))) {
    throw new UsageError(`dlq redrive needs positive sequence numbers, got: ${rest.join(" ") || "(none)"}`);
  }
  const url = (values.nats as string | undefined) ?? (process.env.NATS_URL?.trim() || DEFAULT_NATS);
  // No reconnect loop: a CLI should fail at once when the server is not there.
  const nc = await lazy.nats().connect({ servers: url, maxReconnectAttempts: 0 });
  try {
    if (sub === "redrive") {
      for (const r of await lazy.dlq().redriveDlq(nc, seqs)) out(values.json ? JSON.stringify(r) : `redriven ${r.seq} → ${r.subject} (event ${r.eventId})`);
      return 0;
    }
    const entries = await lazy.dlq().listDlq(await nc.jetstreamManager(), { limit });
    if (values.json) {
      for (const e of entries) out(JSON.stringify(e));
      return 0;
    }
    if (entries.length === 0) return printed("the dead-letter queue is empty");
    for (const e of entries) {
      out(`${e.seq}  ${e.time.toISOString()}  ${e.originalSubject}  consumer=${e.consumer}  deliveries=${e.deliveries}  event=${e.eventId}\n    ${e.reason}`);
    }
    return 0;
  } finally {
    await nc.close();
  }
}

async function up(argv: string[]): Promise<number> {
  return lazy.up().upMain(__filename, ["up", ...argv], argv);
}

const COMMANDS: Record<string, (argv: string[]) => Promise<number>> = { ls, call, token, dlq, up };

/** Runs the CLI on `argv` (without node and script) and resolves with the exit code. */
export async function main(argv: string[]): Promise<number> {
  const [command, ...rest] = argv;
  if (command === undefined || command === "--help" || command === "-h" || command === "help") {
    if (command === undefined) {
      process.stderr.write(USAGE);
      return 2;
    }
    out(USAGE);
    return 0;
  }
  const run = COMMANDS[command];
  const usageOf: Record<string, string> = { ls: LS_USAGE, call: CALL_USAGE, token: TOKEN_USAGE, dlq: DLQ_USAGE, up: UP_USAGE };
  if (!run) {
    process.stderr.write(`meshwork: unknown command '${command}'\n\n${USAGE}`);
    return 2;
  }
  try {
    return await run(rest);
  } catch (e) {
    if (e instanceof UsageError) {
      process.stderr.write(`meshwork ${command}: ${e.message}\n\n${usageOf[command]}`);
      return 2;
    }
    process.stderr.write(`meshwork ${command}: ${e instanceof Error ? e.message : String(e)}\n`);
    return 1;
  }
}

if (require.main === module) {
  main(process.argv.slice(2)).then(
    (code) => process.exit(code),
    (e: unknown) => {
      process.stderr.write(`meshwork: ${e instanceof Error ? e.message : String(e)}\n`);
      process.exit(1);
    },
  );
}
