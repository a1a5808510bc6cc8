/**
 * R4: a 3-member etcd cluster loses its leader (kill -9) under load. Pass: 0 failed calls; a new
 * leader is elected; every replica stays registered through it (leases are re-armed, registrations
 * move to a surviving member); the client's watch matches a fresh read; and the killed member,
 * restarted, rejoins with the same registry.
 */
import { atMost, failed, failuresOf, retries, sample } from "../checks.js";
import { drive } from "../history.js";
import type { Scenario } from "../scenario.js";
import { echoClient, msUntil, okSince, recorded, Replicas, recordingMesh, registered, watched } from "../fixtures/replicas.js";
import { startEtcdCluster } from "../../../mesh/infra/etcd.js";
import { waitFor } from "../../../mesh/infra/index.js";
import { servicePrefix } from "../../../mesh/registry/index.js";
import { Etcd3 } from "etcd3";

export const scenario: Scenario = {
  id: "R4",
  title: "3-member etcd: kill the leader under load",
  fast: false,
  async run({ scale, history, log }) {
    const fast = scale === "fast";
    const ttl = 5;
    const cluster = await startEtcdCluster();
    const replicas = new Replicas(cluster.endpoints);
    const mesh = recordingMesh(cluster.endpoints, history);
    try {
      const ids = ["echo-1", "echo-2", "echo-3"];
      await Promise.all(ids.map((instanceId) => replicas.start({ instanceId, ttlSeconds: ttl })));
      const client = echoClient(mesh);
      await waitFor(() => watched(mesh).length === 3, { what: "the watcher to list 3 replicas" });
      let electedMs = 0;
      let oldLeader = "";
      let newLeader = "";
      let unchangedAfterTtl = false;
      let rejoined = "";
      // Whether the client's endpoint set ever lost a replica (a registration that lapsed).
      let dropped = "";
      const sampler = setInterval(() => {
        const now = watched(mesh).join();
        if (now !== ids.join() && !dropped) dropped = `${now || "none"} at ${history.mark(`watch lists ${now || "none"}`)}`;
      }, 20);
      const script = (async () => {
        const t0 = Date.now();
        await msUntil(t0, () => okSince(history, t0) >= (fast ? 300 : 2_000), "load before the fault", 60_000);
        const leader = await cluster.leader();
        oldLeader = leader.name;
        const killedAt = history.mark(`SIGKILL etcd leader ${leader.name}`);
        await leader.kill();
        const next = await cluster.leader();
        newLeader = next.name;
        electedMs = Date.now() - killedAt;
        history.mark(`new leader ${next.name}`);
        log(`leader ${oldLeader} killed, ${newLeader} elected after ${electedMs} ms`);
        // Longer than a lease TTL after the kill: a registration that lost its lease would show.
        await msUntil(killedAt, () => Date.now() - killedAt >= (ttl + 2) * 1000, "a lease TTL to pass", (ttl + 10) * 1000);
        unchangedAfterTtl = (await registered(mesh)).join() === ids.join();
        const restartAt = history.mark(`restart ${leader.name}`);
        await leader.restart();
        // The rejoined member answers from its own copy (serializable read): it must have caught up.
        const own = new Etcd3({ hosts: leader.endpoint });
        try {
          await msUntil(
            restartAt,
            async () => (rejoined = (await own.getAll().prefix(servicePrefix("echo")).serializable(true).keys()).map((k) => k.slice(servicePrefix("echo").length)).sort().join()) === ids.join(),
            "the restarted member to catch up",
            30_000,
          );
        } finally {
          own.close();
        }
        const after = Date.now();
        await msUntil(after, () => okSince(history, after) >= 300, "load after the rejoin", 30_000);
      })();
      await Promise.all([script, drive(history, { concurrency: 6, until: script, method: "GetProduct" }, (id) => recorded((o) => client.getProduct({ id: `p${id}` }, o)))]).finally(() =>
        clearInterval(sampler),
      );

      const calls = history.calls;
      const bad = failed(calls);
      const fresh = (await registered(mesh)).join();
      return {
        failures: failuresOf(
          atMost(`failed calls (${sample(bad)})`, bad.length, 0),
          dropped ? `the client's watch lost a replica: ${dropped}` : undefined,
          unchangedAfterTtl ? undefined : "a registration went missing after the leader was killed",
          fresh === ids.join() ? undefined : `registered at the end: ${fresh}`,
          watched(mesh).join() === fresh ? undefined : `watch lists ${watched(mesh).join()}, a fresh read ${fresh}`,
          rejoined === ids.join() ? undefined : `the restarted member lists ${rejoined}`,
        ),
        figures: { calls: calls.length, failed: bad.length, retries: retries(calls), "killed leader": oldLeader, "new leader": newLeader, "elected ms": electedMs },
      };
    } finally {
      await replicas.close();
      await mesh.close();
      await cluster.stop();
    }
  },
};
