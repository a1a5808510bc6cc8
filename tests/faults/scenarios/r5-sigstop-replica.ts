/**
 * R5: one of three replicas frozen with SIGSTOP (its connections stay open, nothing answers),
 * then SIGCONT. Pass: attempts at the frozen replica time out per attempt (GetProduct: 2 s ÷ 3
 * attempts = 666 ms) and move on to another replica, the replica stops getting calls, and 0 calls
 * fail — the calls have their contract deadline (2 s), room for several attempts.
 * "Stops getting calls": ejected after 5 consecutive per-try timeouts, or avoided by the
 * balancer before it collects 5 — its calls in flight age, and the load-aware choice (peak EWMA
 * × outstanding) sends nothing more to it after the first few ms; with ~2 calls in flight at the
 * SIGSTOP it may see only 4 in all, too few to eject it, and that is as good as an ejection.
 */
import { atMost, failed, failuresOf, percentile, retries, sample } from "../checks.js";
import { drive } from "../history.js";
import type { Scenario } from "../scenario.js";
import { msUntil, okSince, recorded, withEcho } from "../fixtures/replicas.js";

export const scenario: Scenario = {
  id: "R5",
  title: "SIGSTOP one of 3 replicas, then SIGCONT",
  fast: false,
  async run({ scale, history, log }) {
    const fast = scale === "fast";
    const stopMs = fast ? 4_000 : 20_000;
    return withEcho({ replicas: 3, history }, async ({ list, client }) => {
      const victim = list[1];
      let stoppedAt = 0;
      let contAt = 0;
      const script = (async () => {
        const t0 = Date.now();
        await msUntil(t0, () => okSince(history, t0) >= (fast ? 300 : 2_000), "load on all replicas", 60_000);
        stoppedAt = history.mark(`SIGSTOP ${victim.instanceId}`);
        victim.signal("SIGSTOP");
        await msUntil(stoppedAt, () => Date.now() - stoppedAt >= stopMs, "the stop to last", stopMs + 5_000);
        contAt = history.mark(`SIGCONT ${victim.instanceId}`);
        victim.signal("SIGCONT");
        const after = Date.now();
        await msUntil(after, () => okSince(history, after) >= 500, "load after SIGCONT", 30_000);
      })();
      await Promise.all([script, drive(history, { concurrency: 6, until: script, method: "GetProduct" }, (id) => recorded((o) => client.getProduct({ id: `p${id}` }, o)))]);

      const calls = history.calls;
      const bad = failed(calls);
      const during = calls.filter((c) => c.start >= stoppedAt && c.start < contAt);
      const ejectedAt = history.markAt(`ejected ${victim.address}`);
      const movedOn = calls.filter((c) => c.attempts > 1 && (c.note ?? "").includes(victim.address)).length;
      // Calls started a whole deadline (2 s) after the SIGSTOP found the replica silent for that
      // long: none of them may still be sent to it while it is frozen.
      const wentToVictim = (c: (typeof calls)[number]) => c.endpoint === victim.address || (c.note ?? "").includes(victim.address);
      const stillSent = calls.filter((c) => c.start >= stoppedAt + 2_000 && c.start < contAt && wentToVictim(c)).length;
      log(`${bad.length} failed, ejected ${ejectedAt ? `${ejectedAt - stoppedAt} ms after SIGSTOP` : "never"}`);
      return {
        failures: failuresOf(
          atMost(`failed calls (${sample(bad)})`, bad.length, 0),
          atMost("calls sent to the frozen replica ≥ 2 s after SIGSTOP (neither ejected nor avoided)", stillSent, 0),
          movedOn > 0 ? undefined : "no call moved on from the frozen replica to another (no per-attempt timeout)",
        ),
        figures: {
          calls: calls.length,
          failed: bad.length,
          codes: [...new Set(bad.map((c) => c.code))].join(" ") || "-",
          retries: retries(calls),
          "moved on": movedOn,
          "ejected ms": ejectedAt ? ejectedAt - stoppedAt : "never",
          "sent to frozen ≥ 2 s": stillSent,
          "p99 during ms": percentile(during, 0.99),
          "max ms": percentile(calls, 1),
        },
      };
    });
  },
};
