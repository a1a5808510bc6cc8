import { randomBytes } from "node:crypto";
import { Client } from "pg";

/** The PostgreSQL server tests may use: MESHWORK_TEST_PG_URL, else the machine's local server. */
export const TEST_PG_ADMIN_URL = process.env.MESHWORK_TEST_PG_URL ?? "postgres://postgres@127.0.0.1:5432/test";

/** A database created for one test and dropped afterwards. */
export interface TestDatabase {
  readonly url: string;
  readonly name: string;
  drop(): Promise<void>;
}

/** True when the test PostgreSQL server accepts a connection within a second. */
export async function postgresAvailable(adminUrl = TEST_PG_ADMIN_URL): Promise<boolean> {
  const c = new Client({ connectionString: adminUrl, connectionTimeoutMillis: 1_000 });
  try {
    await c.connect();
    await c.query("select 1");
    return true;
  } catch {
    return false;
  } finally {
    await c.end().catch(() => undefined);
  }
}

/** Creates a fresh, uniquely named database on the test server; `drop()` removes it. */
export async function createTestDatabase(prefix = "meshwork_t", adminUrl = TEST_PG_ADMIN_URL): Promise<TestDatabase> {
  const name = `${prefix}_${randomBytes(6).toString("hex")}`;
  const admin = new Client({ connectionString: adminUrl });
  await admin.connect();
  try {
    await admin.query(`create database ${name}`);
  } finally {
    await admin.end();
  }
  const url = new URL(adminUrl);
  url.pathname = `/${name}`;
  return {
    url: url.toString(),
    name,
    async drop() {
      const c = new Client({ connectionString: adminUrl });
      await c.connect();
      try {
        await c.query(`drop database if exists ${name} with (force)`);
      } finally {
        await c.end();
      }
    },
  };
}
