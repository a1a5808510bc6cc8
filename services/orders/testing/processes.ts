// Test support (not a test file): spawn a service's main.ts and find it in etcd.
import type { Etcd3 } from "etcd3";
import { startProcess, waitFor, type ManagedProcess } from "../../../mesh/infra/index.js";
import { parseInstance, servicePrefix } from "../../../mesh/registry/index.js";

let spawned = 0;

/** A spawned service and the address it registered. */
export interface SpawnedService {
  proc: ManagedProcess;
  address: string;
}

/**
 * Runs `node --import tsx <mainPath>` with `env` and resolves once the process registered under
 * `serviceName` in etcd. One process (not the tsx CLI, which runs the script in a child): a
 * SIGKILL then hits the service itself.
 */
export async function spawnService(etcd: Etcd3, serviceName: string, mainPath: string, env: NodeJS.ProcessEnv): Promise<SpawnedService> {
  const instanceId = `${serviceName}-test-${process.pid}-${++spawned}`;
  const proc = startProcess(process.execPath, ["--import", "tsx", mainPath], {
    env: { ...process.env, MESHWORK_PORT: "0", MESHWORK_DATABASE_URL: "", ...env, MESHWORK_INSTANCE_ID: instanceId },
  });
  try {
    const raw = await waitFor(
      async () => {
        if (proc.proc.exitCode !== null) throw new Error(`${serviceName} main.ts exited early:\n${proc.output()}`);
        const values = Object.values(await etcd.getAll().prefix(servicePrefix(serviceName)).strings());
        return values.find((v) => parseInstance(v).instance === instanceId);
      },
      // 90 s, the local mesh's own start budget: five cold tsx starts in parallel took 32–37 s on
      // the shared 2-core machine (load ~15); an exit is reported at once anyway.
      { timeoutMs: 90_000, what: `${serviceName} registration` },
    );
    const instance = parseInstance(raw);
    return { proc, address: `${instance.address}:${instance.port}` };
  } catch (err) {
    await proc.kill();
    throw err;
  }
}
