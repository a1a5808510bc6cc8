/**
 * Shared parts of the call-release checks (mesh/server/call-release.test.ts and
 * mesh/client/call-release.test.ts): the fixtures track what each call owned with WeakRefs, force
 * GCs in a `--expose-gc` child and print one `RESULT {json}` line; the tests run that child and
 * bound what stayed reachable.
 */
import { startProcess, tsxArgs, waitFor, type ManagedProcess } from "../infra/index.js";

/** WeakRefs to objects, each with the id of the call that owned it. */
export class Tracked {
  private readonly refs: WeakRef<object>[] = [];
  private readonly ids: string[] = [];
  add(o: object, id: string): void {
    this.refs.push(new WeakRef(o));
    this.ids.push(id);
  }
  /** Ids of the calls whose object is still reachable. */
  aliveIds(): string[] {
    return this.ids.filter((_, i) => this.refs[i].deref() !== undefined);
  }
  /** How many objects were tracked. */
  get count(): number {
    return this.refs.length;
  }
}

/** What is still reachable: how many, and the first 20 call ids. */
export type Held = { count: number; ids: string[] };

export function held(ids: string[]): Held {
  return { count: ids.length, ids: ids.slice(0, 20) };
}

/** The `gc` that `node --expose-gc` exposes; throws naming the fixture without it. */
export function exposedGc(fixture: string): () => void {
  const gc = (globalThis as { gc?: () => void }).gc;
  if (!gc) throw new Error(`${fixture} needs node --expose-gc`);
  return gc;
}

// A full GC finds everything unreachable at once: a count unchanged over 5 rounds (with turns
// between) is what stays held, not what is still on its way out.
const STABLE_ROUNDS = 5;
// Far beyond the ~2–9 rounds (< 0.5 s) a run takes; the numbers are reported either way.
const GC_LIMIT_MS = 5_000;

/**
 * A full GC per round, with a macrotask turn between rounds (a WeakRef read in one turn keeps its
 * target until the turn ends; references dropped from a later tick or a finalizer need a turn),
 * until `heldCount()` is 0 or has not moved for 5 rounds, 5 s at most. Never throws: the caller
 * reports the counts and the test judges them.
 */
export async function collectUntilSettled(gc: () => void, heldCount: () => number): Promise<{ rounds: number; ms: number }> {
  const history: number[] = [];
  const started = Date.now();
  await waitFor(
    () => {
      gc();
      history.push(heldCount());
      const last = history.slice(-STABLE_ROUNDS);
      return history.at(-1) === 0 || (last.length === STABLE_ROUNDS && last.every((n) => n === last[0])) || undefined;
    },
    { timeoutMs: GC_LIMIT_MS, intervalMs: 10, what: "finished calls to be collected" },
  ).catch(() => undefined);
  return { rounds: history.length, ms: Date.now() - started };
}

/** Runs a fixture with `--expose-gc` to its end and parses its RESULT line; `started` gets the child (to kill after a timeout). */
export async function runReleaseFixture<R>(fixture: string, args: string[], started: ManagedProcess[]): Promise<R> {
  const child = startProcess(process.execPath, ["--expose-gc", ...tsxArgs(fixture, ...args)]);
  started.push(child);
  const exit = await child.exited;
  const line = /^RESULT (.*)$/m.exec(child.output())?.[1];
  if (exit.code !== 0 || line === undefined) throw new Error(`the fixture failed (${JSON.stringify(exit)}):\n${child.output()}`);
  return JSON.parse(line) as R;
}

/** A jest asymmetric matcher for a {@link Held} of at most `n` objects; a failure shows the count and the calls' ids. */
export function atMost(n: number) {
  return {
    $$typeof: Symbol.for("jest.asymmetricMatcher"),
    asymmetricMatch: (v: Held) => v.count <= n,
    toAsymmetricMatcher: () => `Held<count ≤ ${n}>`,
  };
}
