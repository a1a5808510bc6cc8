/**
 * `npm run faults [-- --fast] [--only R1,R6]`: the fault battery R1–R13 (RELIABILITY.md) and the
 * scenarios beyond it (X1 overload) as one command. Prints a pass/fail table with the figures each scenario measured and exits non-zero when
 * any scenario failed; a failed scenario's history stays in the directory it names.
 */
import { loadScenarios, runScenario, type ScenarioReport } from "./battery.js";
import { table } from "../../bench/lib/stats.js";

async function main() {
  const args = process.argv.slice(2);
  const scale = args.includes("--fast") ? "fast" : "full";
  const onlyArg = args.indexOf("--only");
  const only = onlyArg >= 0 ? new Set(args[onlyArg + 1].split(",").map((s) => s.trim().toUpperCase())) : undefined;
  const scenarios = loadScenarios().filter((s) => !only || only.has(s.id.toUpperCase()));
  const reports: ScenarioReport[] = [];
  for (const s of scenarios) {
    process.stderr.write(`${s.id}: ${s.title} (${scale})\n`);
    const r = await runScenario(s, scale, (l) => process.stderr.write(`  ${l}\n`));
    reports.push(r);
    process.stderr.write(`${s.id}: ${r.pass ? "pass" : "FAIL"} in ${r.seconds.toFixed(1)} s\n`);
  }
  const figures = (r: ScenarioReport) => Object.entries(r.figures).map(([k, v]) => `${k} ${typeof v === "number" ? round(v) : v}`).join(", ");
  process.stdout.write(`\n${table(["id", "fault", "result", "s", "figures"], reports.map((r) => [r.id, r.title, r.pass ? "pass" : "FAIL", r.seconds.toFixed(0), figures(r)]))}\n`);
  for (const r of reports.filter((x) => !x.pass)) {
    process.stdout.write(`\n${r.id} failed:\n  ${r.failures.join("\n  ")}\n  history: ${r.keptDir}\n`);
  }
  process.exit(reports.every((r) => r.pass) ? 0 : 1);
}

const round = (v: number) => (Number.isInteger(v) ? String(v) : v.toFixed(v < 1 ? 3 : 1));

void main();
