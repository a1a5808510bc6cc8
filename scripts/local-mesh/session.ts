import { spawn } from "node:child_process";
import { constants } from "node:os";
import { tsxArgs } from "../../mesh/infra/index.js";

/** Set in the launcher process that {@link runInOwnSession} started. */
export const SESSION_ENV = "MESHWORK_LAUNCHER_SESSION";

/** True in the process that {@link runInOwnSession} started. */
export function inLauncherSession(): boolean {
  return process.env[SESSION_ENV] === "1";
}

/**
 * Runs `file args` (TypeScript, through tsx's loader) as the leader of a new session and process
 * group, relays SIGINT/SIGTERM/SIGHUP to it and resolves with its exit code.
 *
 * Why: Ctrl-C in a terminal sends SIGINT to the whole foreground process group. Were etcd, NATS
 * and the services in it, they would all stop at once: etcd would be gone before the services
 * deregister, NATS before they drain their consumers, and a service that already drains on
 * SIGINT would take the launcher's SIGTERM as a second signal and exit 1. In their own group only
 * the launcher hears Ctrl-C (relayed from here) and stops them in order.
 *
 * The launcher watches the IPC channel: if this process dies without relaying a signal, the
 * channel closes and the launcher stops the mesh instead of leaving it orphaned.
 */
export function runInOwnSession(file: string, args: string[]): Promise<number> {
  const child = spawn(process.execPath, tsxArgs(file, ...args), {
    detached: true,
    stdio: ["ignore", "inherit", "inherit", "ipc"],
    env: { ...process.env, [SESSION_ENV]: "1" },
  });
  const relay = (signal: NodeJS.Signals) => {
    if (child.exitCode === null && child.signalCode === null) child.kill(signal);
  };
  const signals: NodeJS.Signals[] = ["SIGINT", "SIGTERM", "SIGHUP"];
  for (const s of signals) process.on(s, relay);
  return new Promise((resolve) => {
    child.once("error", (err) => {
      process.stderr.write(`meshwork: could not start the launcher: ${err.message}\n`);
      resolve(1);
    });
    child.once("exit", (code, signal) => {
      for (const s of signals) process.off(s, relay);
      if (code !== 0 && child.pid !== undefined) {
        // The launcher died abnormally: ask whatever it left in its group to shut down.
        try {
          process.kill(-child.pid, "SIGTERM");
        } catch {
          // ESRCH: the group is empty, nothing was left behind.
        }
      }
      // A shell reports death by signal N as 128 + N.
      resolve(code ?? (signal ? 128 + (constants.signals[signal] ?? 0) : 1));
    });
  });
}
