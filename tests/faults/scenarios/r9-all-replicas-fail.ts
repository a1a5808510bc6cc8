/**
 * R9: every replica answers Unavailable for a while (SIGUSR2 to all three, then again to heal).
 * Pass: attempts ≤ 1.2 × requests + 10/s over the outage (A6 throttling, the retry budget and the
 * breaker keep retries from multiplying the load); calls succeed again after the heal; and calls
 * answered with a non-retryable code are never retried (counted over a mix of codes).
 */
import { Code } from "@connectrpc/connect";
import { atLeast, atMost, attempts, byCode, failed, failuresOf, percentile, sample } from "../checks.js";
import { drive, type CallRecord } from "../history.js";
import type { Scenario } from "../scenario.js";
import { msUntil, okSince, recorded, withEcho } from "../fixtures/replicas.js";

/** Codes an application answers that no policy may retry (Internal/Unknown/DataLoss included: only Unavailable is retryable by default). */
const NON_RETRYABLE = [
  Code.InvalidArgument,
  Code.NotFound,
  Code.AlreadyExists,
  Code.PermissionDenied,
  Code.FailedPrecondition,
  Code.OutOfRange,
  Code.Unimplemented,
  Code.Unauthenticated,
  Code.ResourceExhausted,
  Code.DeadlineExceeded,
  Code.Internal,
  Code.Unknown,
  Code.DataLoss,
];

export const scenario: Scenario = {
  id: "R9",
  title: "every replica fails for a while; non-retryable codes",
  fast: false,
  async run({ scale, history, log }) {
    const fast = scale === "fast";
    const outageMs = fast ? 4_000 : 30_000;
    return withEcho({ replicas: 3, history }, async ({ list, client }) => {
      let from = 0;
      let to = 0;
      const script = (async () => {
        const t0 = Date.now();
        await msUntil(t0, () => okSince(history, t0) >= (fast ? 300 : 2_000), "load before the outage", 60_000);
        from = history.mark("SIGUSR2 every replica (broken)");
        for (const r of list) r.signal("SIGUSR2");
        await msUntil(from, () => Date.now() - from >= outageMs, "the outage to last", outageMs + 5_000);
        to = history.mark("SIGUSR2 every replica (healed)");
        for (const r of list) r.signal("SIGUSR2");
        // The breaker half-opens after 5 s and closes on a successful probe.
        await msUntil(to, () => okSince(history, to) >= 300, "calls succeeding after the heal", 30_000);
      })();
      let n = 0;
      await Promise.all([
        script,
        drive(history, { concurrency: 6, until: script, method: "GetProduct" }, (id) => recorded((o) => client.getProduct({ id: `p${id}` }, o))),
        // One caller cycling through the non-retryable codes, all along.
        drive(history, { concurrency: 1, until: script, method: "GetProduct(code)", pauseMs: 20 }, () => {
          const code = NON_RETRYABLE[n++ % NON_RETRYABLE.length];
          return recorded((o) => client.getProduct({ id: `code:${code}` }, o)).then((o) => ({ ...o, note: `asked ${code}` }));
        }),
      ]);

      const load = history.calls.filter((c) => c.method === "GetProduct");
      const window = load.filter((c) => c.start >= from && c.start < to);
      const seconds = (to - from) / 1000;
      const sent = attempts(window);
      // Calls that asked for a non-retryable code, answered by a healthy replica with it (not
      // refused by an open breaker or failed by a broken replica during the outage).
      const coded = history.calls.filter((c) => c.method === "GetProduct(code)" && c.attempts > 0 && (c.end < from || c.start > to + 200));
      const retriedCoded = coded.filter((c) => c.attempts > 1 && c.code !== "unavailable");
      log(`${sent} attempts for ${window.length} requests in ${seconds} s`);
      const after = load.filter((c) => c.start > to + 6_000);
      return {
        failures: failuresOf(
          atMost("attempts during the outage", sent, 1.2 * window.length + 10 * seconds),
          atLeast("calls during the outage", window.length, 100),
          atMost(`non-retryable answers retried (${sample(retriedCoded)})`, retriedCoded.length, 0),
          atLeast("non-retryable answers", coded.filter((c) => c.code !== "unavailable").length, NON_RETRYABLE.length),
          atMost(`failed calls 6 s after the heal (${sample(failed(after))})`, failed(after).length, 0),
        ),
        figures: {
          "outage s": seconds,
          requests: window.length,
          attempts: sent,
          "attempts/requests": window.length ? sent / window.length : 0,
          "p50 failed ms": percentile(window.filter((c: CallRecord) => c.code !== "ok"), 0.5),
          "non-retryable": coded.length,
          "retried non-retryable": retriedCoded.length,
          codes: JSON.stringify(byCode(window)),
        },
      };
    });
  },
};
