import { accessSync, constants } from "node:fs";
import { delimiter, join } from "node:path";

/** Debian packages that provide each infrastructure binary. */
const PACKAGES: Record<string, string> = {
  etcd: "etcd-server",
  etcdctl: "etcd-client",
  "nats-server": "nats-server",
};

/**
 * Finds an infrastructure binary on PATH (plus /usr/sbin, where Debian puts nats-server),
 * or throws an error that names the exact install command.
 */
export function findBinary(name: string): string {
  const dirs = [...(process.env.PATH ?? "").split(delimiter), "/usr/sbin", "/usr/bin", "/usr/local/bin"];
  for (const dir of dirs) {
    if (!dir) continue;
    const candidate = join(dir, name);
    try {
      accessSync(candidate, constants.X_OK);
      return candidate;
    } catch {
      // not here; keep looking
    }
  }
  const pkg = PACKAGES[name] ?? name;
  throw new Error(
    `${name} not found on PATH. Install it with: sudo apt-get install -y ${pkg} (or run scripts/ensure-infra.sh as root)`,
  );
}
