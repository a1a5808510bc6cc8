import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { findBinary } from "./binaries.js";
import { ManagedProcess, startProcess } from "./child.js";
import { httpGet } from "./http-probe.js";
import { freePort } from "./ports.js";
import { waitFor } from "./wait.js";

/** Options for {@link startEtcd}. */
export interface EtcdOptions {
  /** Data directory; a fresh temporary one (removed on stop) when absent. */
  dataDir?: string;
  /** Client port; a free one when absent. */
  clientPort?: number;
  /** Peer port; a free one when absent. */
  peerPort?: number;
  /** Prefix for echoing etcd's log lines to stderr; silent when absent. */
  echoPrefix?: string;
}

/** A real single-member etcd server run as a child process. */
export interface EtcdServer {
  /** Client URL, e.g. http://127.0.0.1:40123. */
  readonly endpoint: string;
  readonly clientPort: number;
  readonly dataDir: string;
  /** Graceful stop (SIGTERM). Keeps the data dir when `keepData`. */
  stop(opts?: { keepData?: boolean }): Promise<void>;
  /** SIGKILL, keeping the data dir (an outage, not a teardown). */
  kill(): Promise<void>;
  /** Starts again on the same ports and data dir after stop/kill; resolves when healthy. */
  restart(): Promise<void>;
  /** Last output lines, for diagnostics. */
  output(): string;
}

/** Starts etcd on free loopback ports with its own data dir and resolves once `/health` answers true. */
export async function startEtcd(opts: EtcdOptions = {}): Promise<EtcdServer> {
  const bin = findBinary("etcd");
  const ownDir = opts.dataDir === undefined;
  const dataDir = opts.dataDir ?? mkdtempSync(join(tmpdir(), "meshwork-etcd-"));
  const clientPort = opts.clientPort ?? (await freePort());
  const peerPort = opts.peerPort ?? (await freePort());
  const endpoint = `http://127.0.0.1:${clientPort}`;
  const peer = `http://127.0.0.1:${peerPort}`;
  const args = [
    "--name", "meshwork",
    "--data-dir", dataDir,
    "--listen-client-urls", endpoint,
    "--advertise-client-urls", endpoint,
    "--listen-peer-urls", peer,
    "--initial-advertise-peer-urls", peer,
    "--initial-cluster", `meshwork=${peer}`,
    "--initial-cluster-state", "new",
    "--logger", "zap",
    "--log-level", "warn",
  ];
  let proc: ManagedProcess;
  const launch = async () => {
    proc = startProcess(bin, args, { echoPrefix: opts.echoPrefix });
    let exited = false;
    void proc.exited.then(() => (exited = true));
    try {
      await waitFor(
        async () => {
          if (exited) throw new Error(`etcd exited during start:\n${proc.output()}`);
          const r = await httpGet(`${endpoint}/health`);
          return r.status === 200 && r.body.includes('"true"');
        },
        { what: `etcd health on ${endpoint}` },
      );
    } catch (e) {
      await proc.kill();
      throw new Error(`${(e as Error).message}\n--- etcd output ---\n${proc.output()}`);
    }
  };
  await launch();
  return {
    endpoint,
    clientPort,
    dataDir,
    async stop(o) {
      await proc.stop();
      if (ownDir && !o?.keepData) rmSync(dataDir, { recursive: true, force: true });
    },
    async kill() {
      await proc.kill();
    },
    async restart() {
      await proc.stop();
      await launch();
    },
    output: () => proc.output(),
  };
}
