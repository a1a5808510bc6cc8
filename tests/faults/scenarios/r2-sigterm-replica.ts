/**
 * R2: SIGTERM one of three replicas under load. The drain (NOT_SERVING → lease revoked → wait for
 * watchers → GOAWAY → in-flight calls finish → exit) must cost nothing: 0 failed calls and 0
 * retries caused by it, its key gone within 1 s, exit code 0.
 */
import { atLeast, atMost, failed, failuresOf, retries, sample } from "../checks.js";
import { drive } from "../history.js";
import type { Scenario } from "../scenario.js";
import { msUntil, okSince, recorded, registered, watched, withEcho } from "../fixtures/replicas.js";

export const scenario: Scenario = {
  id: "R2",
  title: "SIGTERM one of 3 replicas under load",
  fast: true,
  async run({ scale, history, log }) {
    const fast = scale === "fast";
    return withEcho({ replicas: 3, history }, async ({ list, mesh, client }) => {
      const victim = list[0];
      let sentAt = 0;
      let keyGoneMs = 0;
      let watchGoneMs = 0;
      let exit: { code: number | null; signal: NodeJS.Signals | null } | undefined;
      const script = (async () => {
        const t0 = Date.now();
        await msUntil(t0, () => new Set(history.calls.map((c) => c.endpoint)).size === 3 && okSince(history, t0) >= (fast ? 300 : 3_000), "load on all three replicas", 60_000);
        sentAt = history.mark(`SIGTERM ${victim.instanceId}`);
        victim.signal("SIGTERM");
        [keyGoneMs, watchGoneMs] = await Promise.all([
          msUntil(sentAt, async () => !(await registered(mesh)).includes(victim.instanceId), "the victim's key to go", 15_000),
          msUntil(sentAt, () => !watched(mesh).includes(victim.instanceId), "the watcher to drop the victim", 15_000),
        ]);
        exit = await victim.proc.exited;
        history.mark(`${victim.instanceId} exited ${exit.code ?? exit.signal}`);
        log(`key gone after ${keyGoneMs} ms, exit ${exit.code ?? exit.signal}`);
        const after = Date.now();
        await msUntil(after, () => okSince(history, after) >= (fast ? 300 : 3_000), "load on the survivors", 60_000);
      })();
      await Promise.all([script, drive(history, { concurrency: 8, until: script, method: "GetProduct" }, (id) => recorded((o) => client.getProduct({ id: `p${id}` }, o)))]);

      const calls = history.calls;
      const bad = failed(calls);
      // A retry the drain caused is one whose earlier attempt went to the victim.
      const causedRetries = calls.filter((c) => c.attempts > 1 && (c.note ?? "").includes(victim.address));
      const servedByVictimAfterSignal = calls.filter((c) => c.code === "ok" && c.endpoint === victim.address && c.start > sentAt).length;
      return {
        failures: failuresOf(
          atMost(`failed calls (${sample(bad)})`, bad.length, 0),
          atMost(`retries caused by the drain (${sample(causedRetries)})`, causedRetries.length, 0),
          atMost("victim's key gone, ms", keyGoneMs, 1_000),
          exit?.code === 0 ? undefined : `victim exited ${JSON.stringify(exit)}, expected code 0`,
          atLeast("calls", calls.length, fast ? 600 : 6_000),
        ),
        figures: {
          calls: calls.length,
          failed: bad.length,
          retries: retries(calls),
          "caused by drain": causedRetries.length,
          "served by victim after SIGTERM": servedByVictimAfterSignal,
          "key gone ms": keyGoneMs,
          "watch gone ms": watchGoneMs,
          exit: exit?.code ?? String(exit?.signal),
        },
      };
    });
  },
};
