/**
 * Runs scenarios one after another, each with its own directory and history; removes the directory
 * of a passing scenario and keeps a failing one's. Shared by `npm run faults` and the jest subset.
 */
import { mkdtempSync, readdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { History } from "./history.js";
import type { Scale, Scenario, ScenarioOutcome } from "./scenario.js";

/** One row of the battery's table. */
export interface ScenarioReport extends ScenarioOutcome {
  id: string;
  title: string;
  pass: boolean;
  seconds: number;
  /** Set when the scenario failed: its history and logs stay here. */
  keptDir?: string;
}

/**
 * Every scenario module under ./scenarios, in battery order: files named r<N>[a-z]-….ts are
 * RELIABILITY.md's R1–R13, x<N>-….ts the scenarios beyond that list (X1 overload, …), run after them.
 * Each exports `scenario`.
 */
export function loadScenarios(): Scenario[] {
  const dir = join(__dirname, "scenarios");
  const files = readdirSync(dir).filter((f) => /^[rx]\d+[a-z]?-.*\.ts$/.test(f) && !f.endsWith(".test.ts"));
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const all = files.map((f) => (require(join(dir, f)) as { scenario: Scenario }).scenario);
  const key = (id: string) => {
    const m = /^([RX])(\d+)([a-z]?)$/.exec(id);
    if (!m) throw new Error(`scenario id ${id} is not R<N>[a-z] or X<N>[a-z]`);
    return (m[1] === "X" ? 100_000 : 0) + Number(m[2]) * 100 + (m[3] ? m[3].charCodeAt(0) - 96 : 0);
  };
  return all.sort((a, b) => key(a.id) - key(b.id));
}

/** Runs one scenario at `scale`; never throws (a crash is a failure with its message). */
export async function runScenario(s: Scenario, scale: Scale, log: (line: string) => void = () => undefined): Promise<ScenarioReport> {
  const dir = mkdtempSync(join(tmpdir(), `meshwork-faults-${s.id}-`));
  const history = new History(join(dir, "history.jsonl"));
  const t0 = Date.now();
  let outcome: ScenarioOutcome;
  try {
    outcome = await s.run({ scale, dir, history, log: (l) => log(`[${s.id}] ${l}`) });
  } catch (e) {
    outcome = { failures: [`crashed: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}`], figures: {} };
  }
  await history.close();
  const pass = outcome.failures.length === 0;
  if (pass) rmSync(dir, { recursive: true, force: true });
  return { id: s.id, title: s.title, ...outcome, pass, seconds: (Date.now() - t0) / 1000, keptDir: pass ? undefined : dir };
}
