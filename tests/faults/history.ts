/**
 * The fault battery's record of what happened: every call the load driver made (id, method,
 * start, end, code, attempts, endpoint), kept in memory for the checkers and appended to a JSONL
 * file so a failing scenario leaves its history behind for reading. The method of etcd's
 * robustness tests and Jepsen: drive traffic while injecting faults, check the history afterwards.
 */
import { createWriteStream, type WriteStream } from "node:fs";

/** One client call as the driver saw it. Times are ms since the epoch (Date.now() precision is enough for ±100 ms checks). */
export interface CallRecord {
  id: number;
  method: string;
  start: number;
  end: number;
  /** "ok" or the Connect code name in lower camel case (e.g. "unavailable"). */
  code: string;
  /** Attempts the client made for this call (1 = no retry); from the policy hooks when known. */
  attempts: number;
  /** The endpoint that answered last, when known. */
  endpoint?: string;
  /** Anything scenario-specific (e.g. order id). */
  note?: string;
}

/** A marker in the history: when a fault was injected or healed. */
export interface FaultMark {
  at: number;
  what: string;
}

/** Records calls and fault marks, in memory and as JSONL lines in `file`. */
export class History {
  readonly calls: CallRecord[] = [];
  readonly marks: FaultMark[] = [];
  private readonly out: WriteStream;
  private nextId = 1;

  constructor(readonly file: string) {
    this.out = createWriteStream(file, { flags: "a" });
  }

  /** A fresh call id. */
  id(): number {
    return this.nextId++;
  }

  record(call: CallRecord): void {
    this.calls.push(call);
    this.out.write(JSON.stringify(call) + "\n");
  }

  /** Notes a fault event (e.g. "SIGKILL replica 2") with the current time; returns the time. */
  mark(what: string): number {
    const m = { at: Date.now(), what };
    this.marks.push(m);
    this.out.write(JSON.stringify({ mark: m.what, at: m.at }) + "\n");
    return m.at;
  }

  /** Time of the first mark named `what`. */
  markAt(what: string): number | undefined {
    return this.marks.find((m) => m.what === what)?.at;
  }

  async close(): Promise<void> {
    await new Promise<void>((resolve) => this.out.end(resolve));
  }
}

/** Options of {@link drive}. */
export interface DriveOptions {
  /** Calls kept in flight at once. */
  concurrency: number;
  /** Stops issuing new calls once this resolves (the scenario's fault script has finished). */
  until: Promise<unknown>;
  method: string;
  /** Optional pause between one worker's calls, for a steady rate instead of a flood. */
  pauseMs?: number;
  /**
   * Pause after a failed call. Default 1 ms: a call refused at once (open breaker) settles in
   * microtasks only, and a worker looping on it would starve the event loop — timers, the fault
   * script and `until` included.
   */
  failurePauseMs?: number;
}

/** What one call returns to the driver so it can be recorded. */
export interface CallOutcome {
  attempts?: number;
  endpoint?: string;
  note?: string;
}

/**
 * Keeps `concurrency` calls of `call` in flight until `until` settles, recording each one in
 * `history`. A call that throws is recorded with its error code; the driver never stops on errors.
 */
export async function drive(history: History, opts: DriveOptions, call: (id: number) => Promise<CallOutcome | void>): Promise<void> {
  let stopped = false;
  void opts.until.finally(() => (stopped = true));
  const worker = async () => {
    while (!stopped) {
      const id = history.id();
      const start = Date.now();
      let code = "ok";
      let outcome: CallOutcome | void = undefined;
      try {
        outcome = await call(id);
      } catch (e) {
        outcome = (e as { outcome?: CallOutcome }).outcome;
        code = codeName(e);
        // The error's message goes into the note: it tells a refused connection from a dropped one.
        const message = (e as { rawMessage?: string; message?: string }).rawMessage ?? (e as Error).message;
        outcome = { ...outcome, note: [outcome?.note, message].filter(Boolean).join(" | ") };
      }
      history.record({ id, method: opts.method, start, end: Date.now(), code, attempts: outcome?.attempts ?? 1, endpoint: outcome?.endpoint, note: outcome?.note });
      const pause = Math.max(opts.pauseMs ?? 0, code === "ok" ? 0 : (opts.failurePauseMs ?? 1));
      // Always one macrotask between calls, so other workers' I/O and timers get their turn.
      await new Promise((r) => (pause > 0 ? setTimeout(r, pause) : setImmediate(r)));
    }
  };
  await Promise.all(Array.from({ length: opts.concurrency }, worker));
}

const CODE_NAMES = ["ok", "canceled", "unknown", "invalidArgument", "deadlineExceeded", "notFound", "alreadyExists", "permissionDenied", "resourceExhausted", "failedPrecondition", "aborted", "outOfRange", "unimplemented", "internal", "unavailable", "dataLoss", "unauthenticated"];

/** The Connect/gRPC code name of an error ("error" when it carries none). */
export function codeName(e: unknown): string {
  const c = (e as { code?: unknown })?.code;
  return typeof c === "number" && CODE_NAMES[c] ? CODE_NAMES[c] : "error";
}
