import type { Etcd3 } from "etcd3";
import { waitFor, type ManagedProcess } from "../infra/index.js";
import { parseInstance, servicePrefix, type InstanceInfo } from "../registry/index.js";

/**
 * Waits until a service process has registered in etcd and returns its entry; fails at once with
 * the process's output if it exits first (tests only).
 */
export async function waitForRegistration(etcd: Etcd3, service: string, proc: ManagedProcess, timeoutMs = 30_000): Promise<InstanceInfo> {
  const raw = await waitFor(
    async () => {
      if (proc.proc.exitCode !== null) throw new Error(`${service} exited early:\n${proc.output()}`);
      return Object.values(await etcd.getAll().prefix(servicePrefix(service)).strings())[0];
    },
    { timeoutMs, what: `${service} registration` },
  );
  return parseInstance(raw);
}
