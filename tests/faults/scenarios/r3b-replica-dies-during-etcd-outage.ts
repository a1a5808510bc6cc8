/**
 * R3b: a replica is killed while etcd is down, so discovery cannot tell the clients. Pass: the
 * client ejects it after a few failed attempts (refused connections, retried elsewhere), 0 failed
 * calls; once etcd is back the dead replica's key expires and the watch matches a fresh read.
 */
import { atLeast, atMost, failed, failuresOf, retries, sample } from "../checks.js";
import { drive } from "../history.js";
import type { Scenario } from "../scenario.js";
import { msUntil, okSince, recorded, registered, watched, withEcho } from "../fixtures/replicas.js";

const CONCURRENCY = 6;

export const scenario: Scenario = {
  id: "R3b",
  title: "a replica dies while etcd is down",
  fast: false,
  async run({ scale, history, log }) {
    const fast = scale === "fast";
    const ttl = fast ? 3 : 5;
    const outageMs = fast ? 6_000 : 20_000;
    return withEcho({ replicas: 3, ttlSeconds: ttl, history }, async ({ etcd, list, mesh, client }) => {
      const victim = list[2];
      const balancer = mesh.transport("echo").balancer;
      let killedAt = 0;
      let ejectedMs = -1;
      let keyGoneMs = 0;
      const script = (async () => {
        const t0 = Date.now();
        await msUntil(t0, () => okSince(history, t0) >= (fast ? 300 : 2_000), "load before the outage", 60_000);
        const downAt = history.mark("etcd SIGKILL");
        await etcd.kill();
        await msUntil(downAt, () => okSince(history, downAt) >= 100, "calls from the cache", 10_000);
        killedAt = history.mark(`SIGKILL ${victim.instanceId}`);
        victim.signal("SIGKILL");
        ejectedMs = await msUntil(killedAt, () => balancer.ejected().includes(victim.address), "the client to eject the dead replica", 10_000);
        history.mark(`ejected ${victim.instanceId}`);
        log(`ejected ${ejectedMs} ms after the kill`);
        await msUntil(downAt, () => Date.now() - downAt >= outageMs, "the outage to last", outageMs + 5_000);
        const upAt = history.mark("etcd restart");
        await etcd.restart();
        keyGoneMs = await msUntil(upAt, async () => !(await registered(mesh)).includes(victim.instanceId), "the dead replica's key to expire", (ttl + 30) * 1000);
        await msUntil(upAt, async () => watched(mesh).join() === (await registered(mesh)).join(), "the watch to match a fresh read", 30_000);
        const after = Date.now();
        await msUntil(after, () => okSince(history, after) >= 300, "load after the restart", 30_000);
      })();
      await Promise.all([script, drive(history, { concurrency: CONCURRENCY, until: script, method: "GetProduct" }, (id) => recorded((o) => client.getProduct({ id: `p${id}` }, o)))]);

      const calls = history.calls;
      const bad = failed(calls);
      // Attempts that went to the dead replica: each such call tried it and then another one.
      const hitDead = calls.filter((c) => c.start >= killedAt - 100 && c.attempts > 1 && (c.note ?? "").includes(victim.address)).length;
      const fresh = (await registered(mesh)).join();
      return {
        failures: failuresOf(
          atMost(`failed calls (${sample(bad)})`, bad.length, 0),
          ejectedMs >= 0 ? undefined : "the dead replica was never ejected",
          // Envoy's 5 consecutive failures, plus the calls already on their way when the fifth failed.
          atMost("calls that tried the dead replica", hitDead, 5 + CONCURRENCY),
          atLeast("calls that tried the dead replica", hitDead, 1),
          watched(mesh).join() === fresh ? undefined : `watch lists ${watched(mesh).join()}, a fresh read ${fresh}`,
        ),
        figures: { calls: calls.length, failed: bad.length, retries: retries(calls), "calls hitting dead": hitDead, "ejected ms": ejectedMs, "key gone after restart ms": keyGoneMs },
      };
    });
  },
};
