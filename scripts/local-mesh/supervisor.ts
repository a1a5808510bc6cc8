import { spawn, type ChildProcess } from "node:child_process";
import { createInterface } from "node:readline";
import { formatLogLine } from "./log-format.js";

/** What to run and how to restart it. */
export interface ProcessSpec {
  /** Instance name: the log prefix (`[catalog-1]`) and the key in reports. */
  name: string;
  command: string;
  args: string[];
  env: NodeJS.ProcessEnv;
  cwd?: string;
  /** Restart backoff; defaults in {@link DEFAULT_BACKOFF}. */
  backoff?: Partial<BackoffPolicy>;
  /** SIGTERM → SIGKILL after this long on stop (default {@link DEFAULT_STOP_GRACE_MS}). */
  stopGraceMs?: number;
}

/** Exponential restart backoff: initial · factor^(n-1), capped, reset after a stable run. */
export interface BackoffPolicy {
  initialMs: number;
  factor: number;
  maxMs: number;
  /** A run at least this long counts as healthy: the next crash starts from `initialMs` again. */
  resetAfterMs: number;
}

export const DEFAULT_BACKOFF: BackoffPolicy = {
  // 250 ms: a crash from a transient cause (a port race, a broker still starting) is retried
  // almost at once, yet a process that dies on start cannot spin faster than 4 starts/s.
  initialMs: 250,
  // Doubling: the usual exponential step; a boot loop reaches the cap in 6 crashes.
  factor: 2,
  // 10 s: a broken service costs one start per 10 s of CPU, and a fix (file saved, port freed)
  // is picked up within 10 s without touching the launcher.
  maxMs: 10_000,
  // 30 s up: well past any start-up failure (they happen within seconds), so a crash after that
  // is a new problem and gets a fast first retry instead of the last long delay.
  resetAfterMs: 30_000,
};

/**
 * A service drains in at most its MESHWORK_DRAIN_GRACE_MS (10 s) plus the registry steps (~1 s)
 * and closing its clients; 15 s leaves margin before it is killed.
 */
export const DEFAULT_STOP_GRACE_MS = 15_000;

/** How a supervised process ended when the supervisor stopped it. */
export interface ExitReport {
  name: string;
  /** Exit code of the last run; null when it ended by a signal. */
  code: number | null;
  signal: NodeJS.Signals | null;
  /** Times the process was started (1 = never restarted). */
  starts: number;
  /** Killed with SIGKILL because it outlived its stop grace. */
  killed: boolean;
}

/** Where a supervisor writes its lines: each line once, already prefixed. */
export type LineSink = (line: string) => void;

/** Delay before restart number `n` (1-based) under `p`. */
export function backoffDelay(p: BackoffPolicy, n: number): number {
  return Math.min(p.maxMs, p.initialMs * p.factor ** Math.max(0, n - 1));
}

/**
 * Keeps one child process running: starts it, pipes its stdout/stderr line by line under its
 * name, restarts it with exponential backoff when it exits on its own, and on {@link stop} sends
 * SIGTERM and waits for the exit (SIGKILL after the grace period).
 *
 * Children run in the launcher's process group: the launcher itself runs in its own session
 * (see session.ts), so a terminal's Ctrl-C reaches only the launcher, which then drains its
 * children in order instead of every process receiving SIGINT at once.
 */
export class Supervisor {
  private child: ChildProcess | undefined;
  private exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }> = Promise.resolve({ code: null, signal: null });
  private stopping = false;
  private restartTimer: NodeJS.Timeout | undefined;
  private crashes = 0;
  private startsCount = 0;
  private last: { code: number | null; signal: NodeJS.Signals | null } = { code: null, signal: null };
  private readonly backoff: BackoffPolicy;
  private readonly onStartFns: Array<(pid: number) => void> = [];

  constructor(
    readonly spec: ProcessSpec,
    private readonly sink: LineSink,
  ) {
    this.backoff = { ...DEFAULT_BACKOFF, ...spec.backoff };
  }

  /** Number of starts so far (restarts + 1 once running). */
  get starts(): number {
    return this.startsCount;
  }

  /** Crashes since the last run that stayed up past `resetAfterMs`. */
  get consecutiveCrashes(): number {
    return this.crashes;
  }

  /** Pid of the current run, if one is alive. */
  get pid(): number | undefined {
    return this.child && this.child.exitCode === null && this.child.signalCode === null ? this.child.pid : undefined;
  }

  /** Calls `fn` with the pid after every (re)start. */
  onStart(fn: (pid: number) => void): void {
    this.onStartFns.push(fn);
  }

  /** Starts the first run. */
  start(): void {
    this.launch();
  }

  private launch(): void {
    this.restartTimer = undefined;
    if (this.stopping) return;
    const startedAt = Date.now();
    this.startsCount++;
    const child = spawn(this.spec.command, this.spec.args, { env: this.spec.env, cwd: this.spec.cwd, stdio: ["ignore", "pipe", "pipe"] });
    this.child = child;
    const prefix = `[${this.spec.name}]`;
    for (const stream of [child.stdout, child.stderr]) {
      if (!stream) continue;
      // readline splits on line ends across chunk boundaries, so a long line is never cut in two.
      createInterface({ input: stream, crlfDelay: Infinity }).on("line", (line) => {
        if (line.trim() === "") return;
        // mesh/runtime already prefixes its lines with the instance id: print it once.
        const text = line.startsWith(`${prefix} `) ? line.slice(prefix.length + 1) : line;
        this.sink(`${prefix} ${formatLogLine(text)}`);
      });
    }
    this.exited = new Promise((resolve) => {
      child.once("error", (err) => {
        this.sink(`${prefix} could not start: ${err.message}`);
        resolve({ code: -1, signal: null });
      });
      child.once("exit", (code, signal) => resolve({ code, signal }));
    });
    void this.exited.then((r) => {
      this.last = r;
      if (this.stopping) return;
      const upMs = Date.now() - startedAt;
      if (upMs >= this.backoff.resetAfterMs) this.crashes = 0;
      this.crashes++;
      const delay = backoffDelay(this.backoff, this.crashes);
      const how = r.signal ? `by signal ${r.signal}` : `with code ${r.code}`;
      this.sink(`${prefix} exited ${how} after ${upMs} ms; restarting in ${delay} ms (crash ${this.crashes})`);
      this.restartTimer = setTimeout(() => this.launch(), delay);
    });
    if (child.pid !== undefined) for (const fn of this.onStartFns) fn(child.pid);
  }

  /**
   * Stops for good: no more restarts, SIGTERM to the running process (it drains), SIGKILL if it
   * is still alive after the grace period. Resolves with how the last run ended.
   */
  async stop(): Promise<ExitReport> {
    this.stopping = true;
    if (this.restartTimer) {
      clearTimeout(this.restartTimer);
      this.restartTimer = undefined;
    }
    let killed = false;
    const child = this.child;
    if (child && child.exitCode === null && child.signalCode === null) {
      child.kill("SIGTERM");
      const timer = setTimeout(() => {
        killed = true;
        this.sink(`[${this.spec.name}] still running ${this.spec.stopGraceMs ?? DEFAULT_STOP_GRACE_MS} ms after SIGTERM; killing it`);
        child.kill("SIGKILL");
      }, this.spec.stopGraceMs ?? DEFAULT_STOP_GRACE_MS);
      this.last = await this.exited;
      clearTimeout(timer);
    }
    return { name: this.spec.name, code: this.last.code, signal: this.last.signal, starts: this.startsCount, killed };
  }

  /** SIGKILL now, no restart (for a launcher that is itself being killed). */
  kill(): void {
    this.stopping = true;
    if (this.restartTimer) clearTimeout(this.restartTimer);
    this.child?.kill("SIGKILL");
  }
}
