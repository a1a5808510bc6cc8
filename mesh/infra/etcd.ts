import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { findBinary } from "./binaries.js";
import { startProcess, type ManagedProcess } from "./child.js";
import { httpGet } from "./http-probe.js";
import { freePort, startOnFreePorts } from "./ports.js";
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
  /** Sends a signal to the etcd process, e.g. SIGSTOP / SIGCONT to freeze it with its connections open. */
  signal(sig: NodeJS.Signals): void;
  /** Last output lines, for diagnostics. */
  output(): string;
}

/** One etcd process: started, health-checked, killed or restarted with the same arguments. */
function etcdProcess(args: string[], endpoint: string, echoPrefix: string | undefined) {
  const bin = findBinary("etcd");
  let proc: ManagedProcess;
  const launch = async () => {
    proc = startProcess(bin, args, { echoPrefix });
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
  return {
    launch,
    get proc() {
      return proc;
    },
  };
}

/** Starts etcd on free loopback ports with its own data dir and resolves once `/health` answers true. */
export async function startEtcd(opts: EtcdOptions = {}): Promise<EtcdServer> {
  const ownDir = opts.dataDir === undefined;
  const dataDir = opts.dataDir ?? mkdtempSync(join(tmpdir(), "meshwork-etcd-"));
  const fixed = opts.clientPort !== undefined && opts.peerPort !== undefined;
  const pick = async () => ({ clientPort: opts.clientPort ?? (await freePort()), peerPort: opts.peerPort ?? (await freePort()) });
  const { clientPort, endpoint, p } = await startOnFreePorts(fixed, pick, async ({ clientPort, peerPort }) => {
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
    const p = etcdProcess(args, endpoint, opts.echoPrefix);
    await p.launch();
    return { clientPort, endpoint, p };
  });
  return {
    endpoint,
    clientPort,
    dataDir,
    async stop(o) {
      await p.proc.stop();
      if (ownDir && !o?.keepData) rmSync(dataDir, { recursive: true, force: true });
    },
    async kill() {
      await p.proc.kill();
    },
    async restart() {
      await p.proc.stop();
      await p.launch();
    },
    signal(sig) {
      if (p.proc.proc.exitCode === null && p.proc.proc.signalCode === null) p.proc.proc.kill(sig);
    },
    output: () => p.proc.output(),
  };
}

/** One member of an {@link EtcdCluster}. */
export interface EtcdMember {
  readonly name: string;
  /** Client URL of this member. */
  readonly endpoint: string;
  /** SIGKILL, keeping its data dir. */
  kill(): Promise<void>;
  /** Starts it again on the same ports and data dir (it rejoins); resolves when healthy. */
  restart(): Promise<void>;
  /** True while its process runs. */
  running(): boolean;
  output(): string;
}

/** A real multi-member etcd cluster on loopback (for leader-failure tests). */
export interface EtcdCluster {
  readonly members: EtcdMember[];
  /** Every member's client URL, for ETCD_ENDPOINTS. */
  readonly endpoints: string[];
  /** The current leader, asked of the running members (`/v3/maintenance/status`). */
  leader(): Promise<EtcdMember>;
  /** Stops every member and removes the data dirs. */
  stop(): Promise<void>;
}

/** Starts a `size`-member etcd cluster (default 3) on free loopback ports; resolves once every member is healthy. */
export async function startEtcdCluster(opts: { size?: number; echoPrefix?: string } = {}): Promise<EtcdCluster> {
  const size = opts.size ?? 3;
  const spec = await Promise.all(
    Array.from({ length: size }, async (_, i) => ({
      name: `meshwork-${i + 1}`,
      dataDir: mkdtempSync(join(tmpdir(), `meshwork-etcd-${i + 1}-`)),
      client: `http://127.0.0.1:${await freePort()}`,
      peer: `http://127.0.0.1:${await freePort()}`,
    })),
  );
  const initialCluster = spec.map((m) => `${m.name}=${m.peer}`).join(",");
  const token = `meshwork-${process.pid}-${Date.now()}`;
  const procs = spec.map((m) =>
    etcdProcess(
      [
        "--name", m.name,
        "--data-dir", m.dataDir,
        "--listen-client-urls", m.client,
        "--advertise-client-urls", m.client,
        "--listen-peer-urls", m.peer,
        "--initial-advertise-peer-urls", m.peer,
        "--initial-cluster", initialCluster,
        "--initial-cluster-state", "new",
        "--initial-cluster-token", token,
        "--logger", "zap",
        "--log-level", "warn",
      ],
      m.client,
      opts.echoPrefix && `${opts.echoPrefix}${m.name}`,
    ),
  );
  const members: EtcdMember[] = spec.map((m, i) => ({
    name: m.name,
    endpoint: m.client,
    kill: () => procs[i].proc.kill(),
    async restart() {
      await procs[i].proc.stop();
      await procs[i].launch();
    },
    running: () => procs[i].proc.proc.exitCode === null && procs[i].proc.proc.signalCode === null,
    output: () => procs[i].proc.output(),
  }));
  // Members become healthy only once a leader is elected, which needs a quorum: start all at once.
  try {
    await Promise.all(procs.map((p) => p.launch()));
  } catch (e) {
    await Promise.all(procs.map((p) => p.proc?.kill()));
    throw e;
  }
  return {
    members,
    endpoints: members.map((m) => m.endpoint),
    async leader() {
      return waitFor(
        async () => {
          for (const m of members.filter((x) => x.running())) {
            const status = await memberStatus(m.endpoint).catch(() => undefined);
            if (status && status.leader !== "0" && status.leader === status.memberId) return m;
          }
          return undefined;
        },
        { what: "an etcd leader" },
      );
    },
    async stop() {
      await Promise.all(procs.map((p) => p.proc.stop()));
      for (const m of spec) rmSync(m.dataDir, { recursive: true, force: true });
    },
  };
}

/** A member's own id and the leader it knows, from etcd's JSON gateway. */
async function memberStatus(endpoint: string): Promise<{ memberId: string; leader: string }> {
  const res = await fetch(`${endpoint}/v3/maintenance/status`, { method: "POST", body: "{}", signal: AbortSignal.timeout(1_000) });
  const body = (await res.json()) as { header?: { member_id?: string }; leader?: string };
  return { memberId: String(body.header?.member_id ?? ""), leader: String(body.leader ?? "0") };
}
