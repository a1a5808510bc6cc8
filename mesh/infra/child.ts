import { ChildProcess, spawn } from "node:child_process";
import { pathToFileURL } from "node:url";

/** A child process whose output is kept (bounded) for error messages. */
export interface ManagedProcess {
  readonly proc: ChildProcess;
  /** Last lines of stdout+stderr, for diagnostics. */
  output(): string;
  /** Resolves with the exit code (or signal) once the process has exited. */
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  /** SIGTERM, then SIGKILL after `graceMs`; resolves when the process is gone. */
  stop(graceMs?: number): Promise<void>;
  /** SIGKILL now; resolves when the process is gone. */
  kill(): Promise<void>;
}

// 64 KiB of recent output is enough to see why a server failed to start.
const OUTPUT_LIMIT = 64 * 1024;

/** Spawns `cmd args` with piped output; `prefix` (when set) echoes each line to our stderr. */
export function startProcess(cmd: string, args: string[], opts: { env?: NodeJS.ProcessEnv; cwd?: string; echoPrefix?: string } = {}): ManagedProcess {
  const proc = spawn(cmd, args, { env: opts.env ?? process.env, cwd: opts.cwd, stdio: ["ignore", "pipe", "pipe"] });
  let buf = "";
  const onData = (chunk: Buffer) => {
    const s = chunk.toString("utf8");
    buf = (buf + s).slice(-OUTPUT_LIMIT);
    if (opts.echoPrefix) {
      for (const line of s.split("\n")) if (line.trim()) process.stderr.write(`${opts.echoPrefix} ${line}\n`);
    }
  };
  proc.stdout?.on("data", onData);
  proc.stderr?.on("data", onData);
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => {
    proc.once("exit", (code, signal) => resolve({ code, signal }));
    proc.once("error", (err) => {
      buf += `\nspawn error: ${err.message}`;
      resolve({ code: -1, signal: null });
    });
  });
  const alive = () => proc.exitCode === null && proc.signalCode === null;
  return {
    proc,
    output: () => buf,
    exited,
    async stop(graceMs = 5_000) {
      if (!alive()) return void (await exited);
      proc.kill("SIGTERM");
      const timer = setTimeout(() => alive() && proc.kill("SIGKILL"), graceMs);
      await exited;
      clearTimeout(timer);
    },
    async kill() {
      if (alive()) proc.kill("SIGKILL");
      await exited;
    },
  };
}

/**
 * Node arguments that run a TypeScript file in the same process (tsx's loader via --import), so
 * signals — SIGKILL included — reach the program itself rather than a wrapper process.
 */
export function tsxArgs(file: string, ...args: string[]): string[] {
  const loader = require.resolve("tsx").replace(/[^/\\]+$/, "loader.mjs");
  return ["--import", pathToFileURL(loader).href, file, ...args];
}

/** Whether a process with this pid exists (signal 0 probes without touching it). */
export function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}
