// Test fixture (R6b): a relay process that SIGKILLs itself after JetStream acked a batch and
// before the rows are marked sent. Usage: tsx relay-crash.fixture.ts <database url> <nats url>
import { openDatabase } from "../db/index.js";
import { OutboxRelay } from "./relay.js";
import { connectNats } from "./test-support.js";

async function main(): Promise<void> {
  const [dbUrl, natsUrl] = process.argv.slice(2);
  const database = await openDatabase(dbUrl);
  const nc = await connectNats(natsUrl);
  const relay = new OutboxRelay({
    database,
    nats: () => nc,
    afterPublish: (ids) => {
      process.stdout.write(`published ${ids.length}\n`);
      process.kill(process.pid, "SIGKILL");
    },
  });
  relay.start();
}

main().catch((err) => {
  process.stderr.write(`${(err as Error).stack}\n`);
  process.exit(1);
});
