/**
 * R3: etcd stopped (kill -9, data kept) for longer than the lease TTL under load, then restarted.
 * Pass: 0 failed calls (clients keep the endpoints they knew), every replica registered again,
 * and the client's watch lists exactly what a fresh read of the registry returns.
 */
import { atLeast, atMost, failed, failuresOf, retries, sample } from "../checks.js";
import { drive } from "../history.js";
import type { Scenario } from "../scenario.js";
import { msUntil, okSince, recorded, registered, watched, withEcho } from "../fixtures/replicas.js";

export const scenario: Scenario = {
  id: "R3",
  title: "etcd down longer than the lease TTL under load",
  fast: true,
  async run({ scale, history, log }) {
    const fast = scale === "fast";
    // Fast: a 3 s lease and a 6 s outage (twice the TTL: every lease has expired by the restart);
    // full: the default 5 s lease and RELIABILITY's 30 s.
    const ttl = fast ? 3 : 5;
    const outageMs = fast ? 6_000 : 30_000;
    return withEcho({ replicas: 3, ttlSeconds: ttl, history }, async ({ etcd, list, mesh, client }) => {
      let restoredMs = 0;
      let convergedMs = 0;
      let servedDuringOutage = 0;
      const ids = list.map((r) => r.instanceId).sort().join();
      const script = (async () => {
        const t0 = Date.now();
        await msUntil(t0, () => okSince(history, t0) >= (fast ? 300 : 3_000), "load before the outage", 60_000);
        const downAt = history.mark("etcd SIGKILL");
        await etcd.kill();
        // The outage's length is the scenario's parameter: calls go on meanwhile.
        await msUntil(downAt, () => Date.now() - downAt >= outageMs, "the outage to last", outageMs + 5_000);
        servedDuringOutage = okSince(history, downAt);
        const upAt = history.mark("etcd restart");
        await etcd.restart();
        restoredMs = await msUntil(upAt, async () => (await registered(mesh)).join() === ids, "every replica registered again", 30_000);
        convergedMs = await msUntil(upAt, async () => watched(mesh).join() === (await registered(mesh)).join(), "the watch to match a fresh read", 30_000);
        log(`restored after ${restoredMs} ms, watch converged after ${convergedMs} ms`);
        const after = Date.now();
        await msUntil(after, () => okSince(history, after) >= (fast ? 300 : 3_000), "load after the restart", 60_000);
      })();
      await Promise.all([script, drive(history, { concurrency: 6, until: script, method: "GetProduct" }, (id) => recorded((o) => client.getProduct({ id: `p${id}` }, o)))]);

      const calls = history.calls;
      const bad = failed(calls);
      const fresh = (await registered(mesh)).join();
      return {
        failures: failuresOf(
          atMost(`failed calls (${sample(bad)})`, bad.length, 0),
          fresh === ids ? undefined : `registered after the outage: ${fresh}, expected ${ids}`,
          watched(mesh).join() === fresh ? undefined : `watch lists ${watched(mesh).join()}, a fresh read ${fresh}`,
          atLeast("calls served during the outage", servedDuringOutage, fast ? 100 : 1_000),
        ),
        figures: {
          calls: calls.length,
          failed: bad.length,
          retries: retries(calls),
          "outage s": outageMs / 1000,
          "served during outage": servedDuringOutage,
          "re-registered ms": restoredMs,
          "watch matches ms": convergedMs,
        },
      };
    });
  },
};
