/** One line of the side-by-side report: a measured figure next to its baseline. */
export interface Row {
  /** Scenario number and name, e.g. "1 meshwork hop". */
  scenario: string;
  metric: string;
  value: number;
  baseline: number;
  /** What the baseline is: a path measured in the same run, or a stated goal. */
  baselineLabel: string;
  unit: string;
  /** Which direction is better, so the ratio reads right ("higher": throughput). */
  better: "higher" | "lower";
  /** Calls or probes that did not end OK; a row with failures is marked in the table. */
  failures: number;
  note?: string;
}

/** value / baseline. */
export const ratioOf = (r: Row): number => r.value / r.baseline;

/** True when the ratio is on the good side of 1 (meets the goal or beats the baseline). */
export const meets = (r: Row): boolean => (r.better === "higher" ? r.value >= r.baseline : r.value <= r.baseline);
