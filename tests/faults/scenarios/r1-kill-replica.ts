/**
 * R1: kill -9 one of three replicas under steady load. Pass: 0 failed calls of the idempotent
 * method (attempts in flight at the victim are retried on another replica), its registry key gone
 * within TTL + 1 s, retries/requests ≤ 0.2.
 */
import { atLeast, atMost, failed, failuresOf, retryRatio, sample } from "../checks.js";
import { drive } from "../history.js";
import type { Scenario } from "../scenario.js";
import { msUntil, okSince, recorded, registered, watched, withEcho } from "../fixtures/replicas.js";

export const scenario: Scenario = {
  id: "R1",
  title: "kill -9 one of 3 replicas under steady load",
  fast: true,
  async run({ scale, history, log }) {
    const fast = scale === "fast";
    // Fast: a 3 s lease so the key expires soon; full: the runtime's default 5 s.
    const ttl = fast ? 3 : 5;
    return withEcho({ replicas: 3, ttlSeconds: ttl, history }, async ({ list, mesh, client }) => {
      const victim = list[1];
      let killedAt = 0;
      let keyGoneMs = 0;
      let watchGoneMs = 0;
      const script = (async () => {
        const t0 = Date.now();
        await msUntil(t0, () => new Set(history.calls.map((c) => c.endpoint)).size === 3 && okSince(history, t0) >= (fast ? 300 : 3_000), "load on all three replicas", 60_000);
        killedAt = history.mark(`SIGKILL ${victim.instanceId}`);
        victim.signal("SIGKILL");
        const gone = await Promise.all([
          msUntil(killedAt, async () => !(await registered(mesh)).includes(victim.instanceId), "the victim's key to expire", (ttl + 10) * 1000),
          msUntil(killedAt, () => !watched(mesh).includes(victim.instanceId), "the watcher to drop the victim", (ttl + 10) * 1000),
        ]);
        [keyGoneMs, watchGoneMs] = gone;
        log(`key gone after ${keyGoneMs} ms`);
        const after = Date.now();
        await msUntil(after, () => okSince(history, after) >= (fast ? 300 : 3_000), "load on the survivors", 60_000);
      })();
      // 6 callers: ~2 calls in flight at the victim when it dies, well inside A6's bucket (10 tokens, no retries at ≤ 5).
      await Promise.all([script, drive(history, { concurrency: 6, until: script, method: "GetProduct" }, (id) => recorded((o) => client.getProduct({ id: `p${id}` }, o)))]);

      const calls = history.calls;
      const bad = failed(calls);
      const rescued = calls.filter((c) => c.attempts > 1 && c.start <= killedAt + 1_000 && (c.note ?? "").includes(victim.address)).length;
      const failures = failuresOf(
        atMost(`failed calls (${sample(bad)})`, bad.length, 0),
        atMost("victim's key gone, ms", keyGoneMs, (ttl + 1) * 1000),
        atMost("retries/requests", retryRatio(calls), 0.2),
        atLeast("calls", calls.length, fast ? 600 : 6_000),
      );
      return {
        failures,
        figures: { calls: calls.length, failed: bad.length, "retries/requests": retryRatio(calls), "retried off victim": rescued, "key gone ms": keyGoneMs, "watch gone ms": watchGoneMs, "ttl s": ttl },
      };
    });
  },
};
