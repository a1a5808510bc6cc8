/**
 * R12: grpc.health.v1 follows reality through a replica's life. The replica starts while etcd is
 * frozen (SIGSTOP), so it listens but cannot register: NOT_SERVING. etcd resumes → registered →
 * SERVING. SIGTERM → NOT_SERVING before its key goes, then the Watch stream ends and the process
 * exits 0. Unknown services: Check → NotFound, Watch → SERVICE_UNKNOWN. A Watch stream sees every
 * change, in order.
 */
import { Code, ConnectError, createClient } from "@connectrpc/connect";
import { HealthCheckResponse_ServingStatus as Status, Health } from "../../../gen/grpc/health/v1/health_pb.js";
import { createMeshTransport, staticEndpoints } from "../../../mesh/client/index.js";
import { freePort, startEtcd, waitFor } from "../../../mesh/infra/index.js";
import { failuresOf } from "../checks.js";
import type { Scenario } from "../scenario.js";
import { Replicas, recordingMesh, registered } from "../fixtures/replicas.js";

const CATALOG = "catalog.v1.CatalogService";

export const scenario: Scenario = {
  id: "R12",
  title: "health during start, drain and for unknown services",
  fast: false,
  async run({ history, log }) {
    const etcd = await startEtcd();
    const replicas = new Replicas([etcd.endpoint]);
    const mesh = recordingMesh([etcd.endpoint]);
    const port = await freePort();
    const transport = createMeshTransport({ endpoints: staticEndpoints(`127.0.0.1:${port}`), serviceName: "echo" });
    const health = createClient(Health, transport);
    const seen: Array<{ at: number; status: string }> = [];
    const failures: Array<string | undefined> = [];
    try {
      // etcd frozen: the replica can listen but not register.
      etcd.signal("SIGSTOP");
      history.mark("SIGSTOP etcd");
      const r = await replicas.start({ instanceId: "echo-1", port, untilListening: true, env: { ECHO_AUTO_READY: "0" } });
      const check = (service: string) => health.check({ service }, { timeoutMs: 1_000 }).then((x) => Status[x.status], (e) => Code[ConnectError.from(e).code]);
      await waitFor(async () => (await check("")) === "NOT_SERVING", { what: "the starting replica to answer NOT_SERVING", timeoutMs: 60_000 });
      const watch = (async () => {
        for await (const m of health.watch({ service: "" })) seen.push({ at: history.mark(`watch ${Status[m.status]}`), status: Status[m.status] });
      })().then(
        () => history.mark("watch ended OK"),
        (e: unknown) => history.mark(`watch ended ${Code[ConnectError.from(e).code]}`),
      );
      const starting = { all: await check(""), service: await check(CATALOG), unknown: await check("nope.v1.Nope") };
      const unknownWatch = await (async () => {
        for await (const m of health.watch({ service: "nope.v1.Nope" }, { timeoutMs: 2_000 })) return Status[m.status];
        return "none";
      })().catch((e: unknown) => Code[ConnectError.from(e).code]);
      failures.push(
        starting.all === "NOT_SERVING" && starting.service === "NOT_SERVING" ? undefined : `while starting: "" ${starting.all}, ${CATALOG} ${starting.service}`,
        starting.unknown === "NotFound" ? undefined : `Check of an unknown service: ${starting.unknown}, expected NotFound`,
        unknownWatch === "SERVICE_UNKNOWN" ? undefined : `Watch of an unknown service: ${unknownWatch}, expected SERVICE_UNKNOWN`,
      );

      etcd.signal("SIGCONT");
      const contAt = history.mark("SIGCONT etcd");
      await waitFor(() => seen.some((s) => s.status === "SERVING"), { what: "SERVING on the watch", timeoutMs: 30_000 });
      const servingAt = seen.find((s) => s.status === "SERVING")!.at;
      const registeredWhenServing = (await registered(mesh)).includes("echo-1");
      failures.push(registeredWhenServing ? undefined : "SERVING before the registry entry existed");
      const ready = { all: await check(""), service: await check(CATALOG) };
      failures.push(ready.all === "SERVING" && ready.service === "SERVING" ? undefined : `when ready: "" ${ready.all}, ${CATALOG} ${ready.service}`);

      const termAt = history.mark("SIGTERM echo-1");
      r.signal("SIGTERM");
      let keyGoneAt = 0;
      await waitFor(async () => !(await registered(mesh)).includes("echo-1") && (keyGoneAt = Date.now()), { what: "the key to go", timeoutMs: 10_000 });
      await watch;
      const exit = await r.proc.exited;
      const notServingAt = seen.find((s) => s.at > termAt && s.status === "NOT_SERVING")?.at;
      const statuses = seen.map((s) => s.status).join(" → ");
      log(`watch saw ${statuses}`);
      failures.push(
        statuses === "NOT_SERVING → SERVING → NOT_SERVING" ? undefined : `watch saw ${statuses}, expected NOT_SERVING → SERVING → NOT_SERVING`,
        notServingAt !== undefined && notServingAt <= keyGoneAt + 20 ? undefined : "NOT_SERVING did not come before the key went",
        history.marks.some((m) => m.what.startsWith("watch ended")) ? undefined : "the watch stream did not end on drain",
        exit.code === 0 ? undefined : `exit ${JSON.stringify(exit)}`,
      );
      return {
        failures: failuresOf(...failures),
        figures: {
          watch: statuses,
          "SERVING ms after etcd resumed": servingAt - contAt,
          "NOT_SERVING ms after SIGTERM": (notServingAt ?? NaN) - termAt,
          "key gone ms after SIGTERM": keyGoneAt - termAt,
          "watch end": history.marks.find((m) => m.what.startsWith("watch ended"))?.what.slice(12) ?? "-",
          exit: exit.code ?? String(exit.signal),
        },
      };
    } finally {
      transport.close();
      await replicas.close();
      await mesh.close();
      await etcd.stop();
    }
  },
};
