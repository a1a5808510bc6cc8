/**
 * Child process for db.test.ts: several of these migrate and then increment one counter in the same
 * SQLite file at once, to prove BEGIN IMMEDIATE and the migration lock across processes.
 * Args: <database url> <go file> <rounds>. Prints "ready", waits for the go file, prints "done".
 */
import { existsSync } from "node:fs";
import { migrate, openDatabase, transaction } from "./index.js";

async function main(): Promise<void> {
  const [url, goFile, rounds] = process.argv.slice(2);
  const database = await openDatabase(url);
  process.stdout.write("ready\n");
  // Start barrier: the test creates goFile once every child is ready.
  while (!existsSync(goFile)) await new Promise((r) => setTimeout(r, 5));
  await migrate(database, [
    {
      id: "0001_counter",
      async up(db) {
        // No "if not exists": a second application would fail here and exit non-zero.
        await db.schema.createTable("counter").addColumn("id", "integer", (c) => c.primaryKey()).addColumn("n", "integer", (c) => c.notNull()).execute();
        await db.insertInto("counter").values({ id: 1, n: 0 }).execute();
        // Widens the race window (not a synchronisation): the other child must wait on the lock.
        await new Promise((r) => setTimeout(r, 100));
      },
    },
  ]);
  for (let i = 0; i < Number(rounds); i++) {
    await transaction(database, async (trx) => {
      const { n } = await trx.selectFrom("counter").select("n").where("id", "=", 1).executeTakeFirstOrThrow();
      // A turn of the event loop between read and write, as real handlers have.
      await new Promise((r) => setImmediate(r));
      await trx.updateTable("counter").set({ n: n + 1 }).where("id", "=", 1).execute();
    });
  }
  await database.close();
  process.stdout.write("done\n");
}

main().catch((err) => {
  process.stderr.write(`${err instanceof Error ? err.stack : String(err)}\n`);
  process.exit(1);
});
