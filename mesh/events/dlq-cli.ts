/**
 * Dead-letter queue tooling:
 *   tsx mesh/events/dlq-cli.ts list [--limit N] [--nats URL]
 *   tsx mesh/events/dlq-cli.ts redrive <seq...> [--nats URL]
 * The NATS URL defaults to $NATS_URL, then nats://127.0.0.1:4222.
 */
import { parseArgs } from "node:util";
import { connect } from "nats";
import { listDlq, redriveDlq } from "./dlq.js";

async function main(argv: string[]): Promise<number> {
  const { positionals, values } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: { nats: { type: "string" }, limit: { type: "string" }, stream: { type: "string" } },
  });
  const [command, ...rest] = positionals;
  if (command !== "list" && command !== "redrive") {
    process.stderr.write("usage: dlq-cli.ts list [--limit N] | redrive <seq...>  [--nats URL] [--stream DLQ]\n");
    return 2;
  }
  const seqs = rest.map(Number);
  if (command === "redrive" && (seqs.length === 0 || seqs.some((s) => !Number.isInteger(s) || s <= 0))) {
    process.stderr.write(`redrive needs positive integer sequences, got: ${rest.join(" ") || "(none)"}\n`);
    return 2;
  }
  const nc = await connect({ servers: values.nats ?? process.env.NATS_URL ?? "nats://127.0.0.1:4222" });
  try {
    if (command === "list") {
      const entries = await listDlq(await nc.jetstreamManager(), { limit: values.limit ? Number(values.limit) : undefined, stream: values.stream });
      for (const e of entries) process.stdout.write(JSON.stringify(e) + "\n");
    } else {
      for (const r of await redriveDlq(nc, seqs, { stream: values.stream })) process.stdout.write(JSON.stringify(r) + "\n");
    }
    return 0;
  } finally {
    await nc.close();
  }
}

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (err) => {
    process.stderr.write(`${(err as Error).message}\n`);
    process.exit(1);
  },
);
