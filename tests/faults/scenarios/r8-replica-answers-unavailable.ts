/**
 * R8: one replica of three answers Unavailable to everything (SIGUSR2 breaks it, a second SIGUSR2
 * heals it). Pass: ejected after 5 consecutive failures (plus what was already in flight);
 * success ≥ 99.9 % once ejected; after it heals, readmitted by a single probe when the ejection
 * time runs out.
 */
import { atLeast, atMost, failed, failuresOf, retries, sample } from "../checks.js";
import { drive } from "../history.js";
import type { Scenario } from "../scenario.js";
import { msUntil, okSince, recorded, withEcho } from "../fixtures/replicas.js";

const CONCURRENCY = 6;

export const scenario: Scenario = {
  id: "R8",
  title: "one of 3 replicas answers Unavailable to everything",
  fast: false,
  async run({ scale, history, log }) {
    const fast = scale === "fast";
    // Full: Envoy's 30 s base ejection (the runtime's default); fast: 3 s.
    const balancer = fast ? { baseEjectionMs: 3_000 } : {};
    return withEcho({ replicas: 3, history, balancer }, async ({ list, client }) => {
      const bad = list[0];
      const mark = (prefix: string) => history.markAt(`${prefix} ${bad.address}`);
      let brokeAt = 0;
      let healedAt = 0;
      const script = (async () => {
        const t0 = Date.now();
        await msUntil(t0, () => okSince(history, t0) >= (fast ? 300 : 2_000), "load on healthy replicas", 60_000);
        brokeAt = history.mark(`SIGUSR2 ${bad.instanceId} (broken)`);
        bad.signal("SIGUSR2");
        const ejectMs = await msUntil(brokeAt, () => mark("ejected") !== undefined, "the broken replica to be ejected", 10_000);
        log(`ejected ${ejectMs} ms after breaking`);
        // Keep it broken for a while under load, then heal it well before the ejection runs out.
        const ejectedAt = mark("ejected")!;
        await msUntil(ejectedAt, () => okSince(history, ejectedAt) >= (fast ? 1_000 : 5_000), "load while ejected", 60_000);
        healedAt = history.mark(`SIGUSR2 ${bad.instanceId} (healed)`);
        bad.signal("SIGUSR2");
        await msUntil(healedAt, () => mark("readmitted") !== undefined, "the healed replica to be readmitted", 60_000);
        const readmittedAt = mark("readmitted")!;
        await msUntil(readmittedAt, () => history.calls.filter((c) => c.endpoint === bad.address && c.start > readmittedAt).length >= 100, "calls on the readmitted replica", 30_000);
      })();
      await Promise.all([script, drive(history, { concurrency: CONCURRENCY, until: script, method: "GetProduct" }, (id) => recorded((o) => client.getProduct({ id: `p${id}` }, o)))]);

      const calls = history.calls;
      const ejectedAt = mark("ejected") ?? Infinity;
      const readmittedAt = mark("readmitted") ?? Infinity;
      const touched = (c: (typeof calls)[number]) => c.endpoint === bad.address || (c.note ?? "").includes(bad.address);
      // Failed attempts at the broken replica before it was ejected (each call that hit it was retried or failed).
      // Calls in flight when the signal landed count too; a call that tried it and went on (or
      // failed there) is one failed attempt.
      const beforeEjection = calls.filter((c) => c.end >= brokeAt && c.start <= ejectedAt && touched(c) && (c.attempts > 1 || c.code !== "ok")).length;
      const afterEjection = calls.filter((c) => c.start > ejectedAt);
      const okAfter = afterEjection.filter((c) => c.code === "ok").length;
      // Ejected → readmitted: only probes reach the replica, one per expired ejection: each failed
      // probe (still broken) ejects it again, the first after the heal readmits it.
      const probes = calls.filter((c) => c.start > ejectedAt && c.start < readmittedAt && touched(c)).length;
      const ejections = history.marks.filter((m) => m.what === `ejected ${bad.address}` && m.at <= readmittedAt).length;
      const bads = failed(calls);
      return {
        failures: failuresOf(
          Number.isFinite(ejectedAt) ? undefined : "never ejected",
          atLeast("failed attempts before ejection", beforeEjection, 5),
          atMost("failed attempts before ejection", beforeEjection, 5 + CONCURRENCY - 1),
          atLeast(`success after ejection, % (${sample(failed(afterEjection))})`, (100 * okAfter) / Math.max(1, afterEjection.length), 99.9),
          Number.isFinite(readmittedAt) ? undefined : "never readmitted",
          probes === ejections ? undefined : `${probes} attempts at the replica between ejection and readmission, expected one probe per ejection (${ejections})`,
        ),
        figures: {
          calls: calls.length,
          failed: bads.length,
          retries: retries(calls),
          "hits before ejection": beforeEjection,
          "success after ejection %": (100 * okAfter) / Math.max(1, afterEjection.length),
          ejections,
          "probe attempts": probes,
          "readmitted s after heal": (readmittedAt - healedAt) / 1000,
        },
      };
    });
  },
};
