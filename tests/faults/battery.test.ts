/**
 * The battery's fast subset inside `npm test`: every scenario marked `fast` runs at fast scale and
 * must pass; the full battery is `npm run faults`.
 */
import { loadScenarios, runScenario } from "./battery.js";

const fast = loadScenarios().filter((s) => s.fast);

test("the fast subset is R1, R2, R3, R6, R7 and R11 at least", () => {
  const ids = new Set(fast.map((s) => s.id));
  for (const id of ["R1", "R2", "R3", "R6", "R7", "R11"]) expect(ids.has(id)).toBe(true);
});

describe.each(fast.map((s) => [s.id, s] as const))("%s", (_id, s) => {
  test(s.title, async () => {
    const r = await runScenario(s, "fast");
    // The failures name the broken invariant and where the history was kept.
    expect({ failures: r.failures, keptDir: r.keptDir }).toEqual({ failures: [], keptDir: undefined });
  }, 240_000);
});
