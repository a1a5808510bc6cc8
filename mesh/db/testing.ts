import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { createTestDatabase } from "../infra/index.js";
import type { Dialect } from "./database.js";

/** Both dialects, for `describe.each(DIALECTS)`: service code must pass its tests on each. */
export const DIALECTS: Dialect[] = ["sqlite", "postgres"];

/** A database URL for one test plus its cleanup. */
export interface ScratchDatabase {
  readonly url: string;
  /** Removes the database (close every Database on it first). */
  drop(): Promise<void>;
}

/**
 * A fresh, empty database for a test: a SQLite file in a new temp dir (inside a not-yet-existing
 * subfolder, so openDatabase's mkdir is exercised), or a PostgreSQL database from createTestDatabase().
 */
export async function createScratchDatabase(dialect: Dialect): Promise<ScratchDatabase> {
  if (dialect === "postgres") {
    const t = await createTestDatabase();
    return { url: t.url, drop: () => t.drop() };
  }
  const dir = mkdtempSync(path.join(tmpdir(), "meshwork-db-"));
  return { url: `sqlite:${path.join(dir, "data", "service.db")}`, drop: async () => rmSync(dir, { recursive: true, force: true }) };
}
