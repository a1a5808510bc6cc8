/**
 * R13: keepalive misconfiguration. A client whose channels ping every 100 ms (instead of the
 * mesh's 30 s) calls a replica through a strict peer that enforces grpc-core's ping policy
 * (tests/faults/fixtures/strict-ping-proxy.ts). Pass: the too-frequent pings get GOAWAY
 * ENHANCE_YOUR_CALM "too_many_pings"; the client recovers — grpc-js doubles its ping interval on
 * each such GOAWAY (gRFC A8) until the peer stops complaining — with 0 failed calls.
 * Calls come with pauses, as on a quiet connection: pings on a busy one are not strikes.
 */
import { createClient } from "@connectrpc/connect";
import { CatalogService } from "../../../gen/catalog/v1/catalog_pb.js";
import { ChannelPool, createMeshTransport, staticEndpoints } from "../../../mesh/client/index.js";
import { startEtcd } from "../../../mesh/infra/index.js";
import { defaultPolicy } from "../../../mesh/runtime/mesh.js";
import { atLeast, atMost, failed, failuresOf, sample } from "../checks.js";
import { drive } from "../history.js";
import type { Scenario } from "../scenario.js";
import { msUntil, recorded, recordingPolicy, Replicas } from "../fixtures/replicas.js";
import { startStrictPingProxy } from "../fixtures/strict-ping-proxy.js";

/** The misconfigured client's ping interval. */
const CLIENT_PING_MS = 100;
/** The strict peer's minimum interval between pings without data (grpc-core: 5 min). */
const MIN_INTERVAL_MS = 1_000;
/** Pause between calls: idle stretches long enough for several pings. */
const PAUSE_MS = 700;

export const scenario: Scenario = {
  id: "R13",
  title: "client pings too often: GOAWAY too_many_pings",
  fast: false,
  async run({ scale, history, log }) {
    const runMs = scale === "fast" ? 10_000 : 25_000;
    // The last stretch in which no GOAWAY may come: the client must have settled by then.
    const quietMs = scale === "fast" ? 4_000 : 10_000;
    const etcd = await startEtcd();
    const replicas = new Replicas([etcd.endpoint]);
    const channels = new ChannelPool({ "grpc.keepalive_time_ms": CLIENT_PING_MS });
    let transport: ReturnType<typeof createMeshTransport> | undefined;
    try {
      const r = await replicas.start({ instanceId: "echo-1" });
      const strict = await startStrictPingProxy({ upstream: r.address, minIntervalMs: MIN_INTERVAL_MS, onGoaway: () => history.mark("GOAWAY too_many_pings") });
      try {
        transport = createMeshTransport({ endpoints: staticEndpoints(strict.address), serviceName: "echo", channels, policy: recordingPolicy(defaultPolicy("echo")) });
        const client = createClient(CatalogService, transport);
        const t0 = Date.now();
        const until = msUntil(t0, () => Date.now() - t0 >= runMs, "the run to last", runMs + 5_000);
        await drive(history, { concurrency: 1, until, method: "GetProduct", pauseMs: PAUSE_MS }, (id) => recorded((o) => client.getProduct({ id: `p${id}` }, o)));
        const end = Date.now();
        const calls = history.calls;
        const bad = failed(calls);
        const lateGoaways = strict.goaways.filter((g) => g > end - quietMs).length;
        const gaps = strict.pings.slice(1).map((p, i) => p - strict.pings[i]);
        const lastGap = gaps.length ? Math.max(...gaps.slice(-3)) : 0;
        log(`${strict.goaways.length} GOAWAYs, ${strict.pings.length} pings, last ping gaps ${gaps.slice(-3).join(", ")} ms`);
        return {
          failures: failuresOf(
            atLeast("GOAWAY too_many_pings sent", strict.goaways.length, 1),
            atMost(`GOAWAYs in the last ${quietMs / 1000} s (the client did not back off)`, lateGoaways, 0),
            atMost(`failed calls (${sample(bad)})`, bad.length, 0),
            atLeast("calls", calls.length, Math.floor(runMs / (PAUSE_MS + 100)) - 2),
          ),
          figures: { calls: calls.length, failed: bad.length, goaways: strict.goaways.length, pings: strict.pings.length, "last ping gap ms": lastGap, "client ping ms": CLIENT_PING_MS },
        };
      } finally {
        transport?.close();
        channels.close();
        await strict.close();
      }
    } finally {
      await replicas.close();
      await etcd.stop();
    }
  },
};
