/**
 * X1 (issue #4, beyond RELIABILITY's list): overload. One replica with a concurrency limit of 4
 * (queue 2) and 100 ms handlers, first at its limit (4 callers), then at 5× (20 callers). Pass:
 * nothing shed at the limit; at 5× the excess is rejected with ResourceExhausted faster than a
 * handler run, and the admitted calls keep p99 ≤ 2× the unloaded p99.
 * The client makes one attempt per call (no policy): this measures the server's shedding, not the
 * client's retries of it. A rejected caller backs off 200 ms, like a client honouring pushback.
 */
import { createClient } from "@connectrpc/connect";
import { CatalogService } from "../../../gen/catalog/v1/catalog_pb.js";
import { createMeshTransport, staticEndpoints } from "../../../mesh/client/index.js";
import { startEtcd, waitFor } from "../../../mesh/infra/index.js";
import { atLeast, atMost, byCode, failuresOf, percentile } from "../checks.js";
import { drive, type CallRecord } from "../history.js";
import type { Scenario } from "../scenario.js";
import { recorded, recordingPolicy, Replicas } from "../fixtures/replicas.js";

const LIMIT = 4;
const HANDLER_MS = 100;
/** Calls in each phase's first 300 ms are not measured: the callers all arrive at once then. */
const SETTLE_MS = 300;

export const scenario: Scenario = {
  id: "X1",
  title: "overload: 5× the concurrency limit",
  fast: false,
  async run({ scale, history, log }) {
    const phaseMs = scale === "fast" ? 2_500 : 10_000;
    const etcd = await startEtcd();
    const replicas = new Replicas([etcd.endpoint]);
    try {
      const r = await replicas.start({ instanceId: "echo-1", env: { ECHO_DELAY_MS: String(HANDLER_MS), ECHO_CONCURRENCY: `${LIMIT},2` } });
      const transport = createMeshTransport({ endpoints: staticEndpoints(r.address), serviceName: "echo", policy: recordingPolicy({}) });
      const client = createClient(CatalogService, transport);
      try {
        // Warm up (not measured): connection and JIT.
        for (let i = 0; i < 20; i++) await client.getProduct({ id: "warm" });
        const phase = async (name: string, callers: number) => {
          const t0 = history.mark(`${name}: ${callers} callers`);
          const until = waitFor(() => Date.now() - t0 >= SETTLE_MS + phaseMs, { what: name, timeoutMs: phaseMs + 10_000 });
          await drive(history, { concurrency: callers, until, method: name, failurePauseMs: 200 }, (id) => recorded((o) => client.getProduct({ id: `p${id}` }, o)));
          return history.calls.filter((c) => c.method === name && c.start >= t0 + SETTLE_MS);
        };
        const unloaded = await phase("at the limit", LIMIT);
        const loaded = await phase("5x the limit", 5 * LIMIT);
        const ok = (cs: CallRecord[]) => cs.filter((c) => c.code === "ok");
        const shed = loaded.filter((c) => c.code === "resourceExhausted");
        const other = loaded.filter((c) => c.code !== "ok" && c.code !== "resourceExhausted");
        const p99Unloaded = percentile(ok(unloaded), 0.99);
        const p99Loaded = percentile(ok(loaded), 0.99);
        log(`p99 ${p99Unloaded} ms at the limit, ${p99Loaded} ms at 5×; ${shed.length} shed`);
        return {
          failures: failuresOf(
            atMost(`calls not OK at the limit (${JSON.stringify(byCode(unloaded))})`, unloaded.length - ok(unloaded).length, 0),
            atMost(`calls failed other than ResourceExhausted (${JSON.stringify(byCode(other))})`, other.length, 0),
            atLeast("admitted calls at 5×", ok(loaded).length, (phaseMs / HANDLER_MS) * LIMIT * 0.5),
            atLeast("shed calls at 5×", shed.length, phaseMs / 50),
            atMost("p99 of admitted calls at 5× over p99 at the limit", p99Loaded / Math.max(1, p99Unloaded), 2),
            atMost("p50 of a shed call, ms (below one handler run)", percentile(shed, 0.5), HANDLER_MS),
          ),
          figures: {
            "p99 at limit ms": p99Unloaded,
            "p99 at 5x ms": p99Loaded,
            ratio: p99Loaded / Math.max(1, p99Unloaded),
            admitted: ok(loaded).length,
            shed: shed.length,
            "p50 shed ms": percentile(shed, 0.5),
          },
        };
      } finally {
        transport.close();
      }
    } finally {
      await replicas.close();
      await etcd.stop();
    }
  },
};
