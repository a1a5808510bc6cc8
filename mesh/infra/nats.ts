import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { findBinary } from "./binaries.js";
import { ManagedProcess, startProcess } from "./child.js";
import { httpGet } from "./http-probe.js";
import { freePort, startOnFreePorts } from "./ports.js";
import { waitFor } from "./wait.js";

/** Options for {@link startNats}. */
export interface NatsOptions {
  /** JetStream store directory; a fresh temporary one (removed on stop) when absent. */
  storeDir?: string;
  /** Client port; a free one when absent. */
  port?: number;
  /** Monitoring port (health); a free one when absent. */
  monitorPort?: number;
  /** Prefix for echoing the server's log lines to stderr; silent when absent. */
  echoPrefix?: string;
}

/** A real nats-server with JetStream run as a child process. */
export interface NatsServer {
  /** Client URL, e.g. nats://127.0.0.1:40124. */
  readonly url: string;
  readonly port: number;
  readonly storeDir: string;
  stop(opts?: { keepData?: boolean }): Promise<void>;
  /** SIGKILL, keeping the store (an outage, not a teardown). */
  kill(): Promise<void>;
  /** Starts again on the same ports and store after stop/kill; resolves when healthy. */
  restart(): Promise<void>;
  output(): string;
}

/** Starts `nats-server -js` on free loopback ports and resolves once its JetStream health check passes. */
export async function startNats(opts: NatsOptions = {}): Promise<NatsServer> {
  const bin = findBinary("nats-server");
  const ownDir = opts.storeDir === undefined;
  const storeDir = opts.storeDir ?? mkdtempSync(join(tmpdir(), "meshwork-nats-"));
  let proc!: ManagedProcess;
  const fixed = opts.port !== undefined && opts.monitorPort !== undefined;
  const pick = async () => ({ port: opts.port ?? (await freePort()), monitorPort: opts.monitorPort ?? (await freePort()) });
  const { port, launch } = await startOnFreePorts(fixed, pick, async ({ port, monitorPort }) => {
    const args = ["-js", "-sd", storeDir, "-a", "127.0.0.1", "-p", String(port), "-m", String(monitorPort)];
    const launch = async () => {
      proc = startProcess(bin, args, { echoPrefix: opts.echoPrefix });
      let exited = false;
      void proc.exited.then(() => (exited = true));
      try {
        await waitFor(
          async () => {
            if (exited) throw new Error(`nats-server exited during start:\n${proc.output()}`);
            const r = await httpGet(`http://127.0.0.1:${monitorPort}/healthz?js-enabled-only=true`);
            return r.status === 200;
          },
          { what: `nats-server health on port ${monitorPort}` },
        );
      } catch (e) {
        await proc.kill();
        throw new Error(`${(e as Error).message}\n--- nats-server output ---\n${proc.output()}`);
      }
    };
    await launch();
    return { port, launch };
  });
  return {
    url: `nats://127.0.0.1:${port}`,
    port,
    storeDir,
    async stop(o) {
      await proc.stop();
      if (ownDir && !o?.keepData) rmSync(storeDir, { recursive: true, force: true });
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
