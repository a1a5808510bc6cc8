/**
 * The shape of one fault-battery scenario (R1–R13 of RELIABILITY.md). A scenario starts its own
 * processes on loopback (ports from 0), drives recorded load while it injects its fault, runs
 * checkers over the history and stops everything it started, pass or fail.
 */
import type { History } from "./history.js";

/** `fast` runs inside `npm test` (small counts, short outages); `full` is the battery's scale. */
export type Scale = "fast" | "full";

export interface ScenarioContext {
  scale: Scale;
  /** Where the scenario keeps its history and any logs; kept when the scenario fails. */
  dir: string;
  /** The call history; its file lives in `dir`. */
  history: History;
  /** Progress lines (printed by `npm run faults`, silent in jest). */
  log: (line: string) => void;
}

/** What a scenario found: the invariant failures (empty = pass) and the figures it measured. */
export interface ScenarioOutcome {
  failures: string[];
  /** Figures for the table, e.g. { calls: 5210, failed: 0, "retries/requests": 0.01, "key gone ms": 4310 }. */
  figures: Record<string, number | string>;
}

export interface Scenario {
  /** "R1", "R3b", ... */
  id: string;
  /** One line: the fault. */
  title: string;
  /** Part of the fast subset that runs in `npm test`. */
  fast: boolean;
  run(ctx: ScenarioContext): Promise<ScenarioOutcome>;
}
