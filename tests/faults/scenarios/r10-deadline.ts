/**
 * R10: the backend works past the caller's deadline. Client → front (forwards through the mesh)
 * → back (a work loop ticking every 10 ms for far longer than the deadline). Pass: every call
 * fails DeadlineExceeded at the deadline ± 100 ms, and the back's handler is cancelled by the
 * propagated deadline: each work loop ends aborted and the tick counter stops growing.
 * Quick calls run alongside (most of the traffic), as in a service where one method is slow: a
 * stream of timeouts alone would rightly open the client's circuit breaker (Hystrix counts
 * timeouts as failures) and later calls would fail fast instead of reaching the deadline.
 */
import { atLeast, atMost, byCode, failuresOf, percentile } from "../checks.js";
import { drive } from "../history.js";
import type { Scenario } from "../scenario.js";
import { echoClient, msUntil, recorded, Replicas, recordingMesh, watched } from "../fixtures/replicas.js";
import { monitorEventLoopDelay } from "node:perf_hooks";
import { startEtcd, waitFor } from "../../../mesh/infra/index.js";
import type { Mesh } from "../../../mesh/runtime/index.js";

/** The caller's deadline; far below GetProduct's 2 s contract timeout, so it is the one that applies. */
const DEADLINE_MS = 400;
/** How long the back would work if nobody cancelled it. */
const WORK_MS = 1_800;
const TOLERANCE_MS = 100;

interface EchoStats {
  served: number;
  workTicks: number;
  workRunning: number;
  workAborted: number;
  lastAbortAt: number;
}

const statsOf = async (mesh: Mesh, service: string): Promise<EchoStats> => JSON.parse((await echoClient(mesh, service).getProduct({ id: "stats" })).product!.name) as EchoStats;

export const scenario: Scenario = {
  id: "R10",
  title: "backend works past the deadline (2 hops)",
  fast: false,
  async run({ scale, history, log }) {
    const calls = scale === "fast" ? 30 : 200;
    const etcd = await startEtcd();
    const replicas = new Replicas([etcd.endpoint]);
    const mesh = recordingMesh([etcd.endpoint], history);
    try {
      await replicas.start({ instanceId: "back-1", service: "back" });
      await replicas.start({ instanceId: "front-1", service: "front", env: { ECHO_UPSTREAM: "back" } });
      const front = echoClient(mesh, "front");
      await waitFor(() => watched(mesh, "front").length === 1 && watched(mesh, "back").length === 1, { what: "front and back discovered" });
      // Warm up (not recorded): channels connected and both processes' code paths compiled, so
      // the first measured calls do not pay a connect or the JIT.
      for (let i = 0; i < 50; i++) await front.getProduct({ id: "warm" });
      await Promise.all(Array.from({ length: 4 }, () => front.getProduct({ id: `work:${WORK_MS}` }, { timeoutMs: DEADLINE_MS }).catch(() => undefined)));
      // How late this process's timers fire (the client's deadline timer among them): on a quiet
      // machine ~0; on an overloaded one it is added to the tolerance and reported.
      const lag = monitorEventLoopDelay({ resolution: 10 });
      lag.enable();
      let n = 0;
      const done = waitFor(() => n >= calls, { what: `${calls} calls`, timeoutMs: 300_000 });
      await Promise.all([
        drive(history, { concurrency: 2, until: done, method: "GetProduct(work)" }, async () => {
          n++;
          return recorded((o) => front.getProduct({ id: `work:${WORK_MS}` }, { ...o, timeoutMs: DEADLINE_MS }));
        }),
        // ~200 quick calls/s: the breaker sees mostly successes, and the client's event loop stays
        // free to fire the deadline timers on time (flat out, this driver would saturate it).
        drive(history, { concurrency: 4, until: done, method: "GetProduct", pauseMs: 20 }, (id) => recorded((o) => front.getProduct({ id: `p${id}` }, o))),
      ]);
      lag.disable();
      const lagP99 = Math.round(lag.percentile(99) / 1e6);
      const all = history.calls.filter((c) => c.method === "GetProduct(work)");
      const quick = history.calls.filter((c) => c.method === "GetProduct");
      const lastEnd = Math.max(...all.map((c) => c.end));
      // Every work loop must end aborted: none still running, ticks frozen.
      const settledMs = await msUntil(lastEnd, async () => (await statsOf(mesh, "back")).workRunning === 0, "every work loop to end", 10_000);
      const s1 = await statsOf(mesh, "back");
      const frozenSince = Date.now();
      await msUntil(frozenSince, () => Date.now() - frozenSince >= 300, "an idle 300 ms", 1_000);
      const s2 = await statsOf(mesh, "back");
      log(`back: ${s2.workAborted} loops aborted, ${s2.workTicks} ticks, last abort ${s2.lastAbortAt - lastEnd} ms after the last call ended`);

      const early = all.filter((c) => c.end - c.start < DEADLINE_MS - TOLERANCE_MS).length;
      const late = all.filter((c) => c.end - c.start > DEADLINE_MS + TOLERANCE_MS).length;
      // Early is a logic error and must never happen; late is mostly the client's timer firing late
      // on a busy machine: 99 % within the tolerance plus the measured timer lag.
      const p99 = percentile(all, 0.99);
      const codes = byCode(all);
      // Without cancellation each loop would tick ~WORK_MS / 10 times; stopped at the deadline, ~DEADLINE_MS / 10.
      const ticksPerCall = s2.workTicks / (all.length + 4);
      return {
        failures: failuresOf(
          atMost(`calls not DeadlineExceeded (${JSON.stringify(codes)})`, all.length - (codes.deadlineExceeded ?? 0), 0),
          atMost(`calls answered before the deadline − ${TOLERANCE_MS} ms`, early, 0),
          atMost(`p99 of answers, ms (${late} calls after the deadline + ${TOLERANCE_MS} ms; client timer lag p99 ${lagP99} ms)`, p99, DEADLINE_MS + TOLERANCE_MS + lagP99),
          atLeast("back work loops aborted", s2.workAborted, all.length + 4),
          atMost("back ticks after every loop ended", s2.workTicks - s1.workTicks, 0),
          atMost("back ticks per call", ticksPerCall, (DEADLINE_MS + TOLERANCE_MS) / 10),
          atMost("quick calls failed", quick.filter((c) => c.code !== "ok").length, 0),
        ),
        figures: {
          calls: all.length,
          "quick calls": quick.length,
          "deadline ms": DEADLINE_MS,
          "p50 ms": percentile(all, 0.5),
          "p99 ms": p99,
          late,
          "client timer lag p99 ms": lagP99,
          "max ms": percentile(all, 1),
          "aborted loops": s2.workAborted,
          "ticks/call": ticksPerCall,
          "loops ended ms after last call": settledMs,
        },
      };
    } finally {
      await replicas.close();
      await mesh.close();
      await etcd.stop();
    }
  },
};
