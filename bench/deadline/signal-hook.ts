/**
 * µs per outgoing call spent linking it to the inbound call's cancellation: the call policy's
 * `signal` hook plus what a unary attempt does with the result (listen for abort, stop listening
 * at the status). Old hook (AbortSignal.any whenever the caller passed a signal) and the current
 * one, interleaved in one process, for three ways a handler calls out: no signal, its own
 * `ctx.signal`, and a separate signal of its own. Each simulated handler gets a fresh inbound
 * signal (created outside the timed part) and makes `perHandler` calls.
 *
 *   npx tsx bench/deadline/signal-hook.ts [callsPerRound=100000] [rounds=7] [perHandler=20]
 */
import { CatalogService } from "../../gen/catalog/v1/catalog_pb.js";
import { currentScope, runWithDeadline } from "../../mesh/deadline/index.js";
import { NEVER_ABORTED } from "../../mesh/grpc/index.js";
import { createCallPolicy } from "../../mesh/policy/index.js";

const [callsArg = "100000", roundsArg = "7", perArg = "20"] = process.argv.slice(2);
const perHandler = Number(perArg);
const calls = Number(callsArg);
const rounds = Number(roundsArg);
const method = CatalogService.methods[0];
const policy = createCallPolicy({ service: "catalog" });
type Hook = (m: typeof method, s: AbortSignal) => AbortSignal;
const current: Hook = (m, s) => policy.signal!(m, s);
// The hook as it was at HEAD 4568de9.
const old: Hook = (_m, signal) => {
  const inbound = currentScope()?.signal;
  if (!inbound) return signal;
  return signal === NEVER_ABORTED ? inbound : AbortSignal.any([signal, inbound]);
};

const noop = () => undefined;
function run(hook: Hook, pattern: "none" | "inbound" | "own"): number {
  const handlers = Math.floor(calls / perHandler);
  const own = new AbortController().signal;
  let ns = 0n;
  for (let h = 0; h < handlers; h++) {
    const inboundCtl = new AbortController();
    const inbound = inboundCtl.signal;
    const caller = pattern === "none" ? NEVER_ABORTED : pattern === "inbound" ? inbound : own;
    ns += runWithDeadline(undefined, inbound, () => {
      const t0 = process.hrtime.bigint();
      for (let i = 0; i < perHandler; i++) {
        const s = hook(method, caller);
        s.addEventListener("abort", noop, { once: true });
        s.removeEventListener("abort", noop);
      }
      return process.hrtime.bigint() - t0;
    });
    // The handler finished: the adapter aborts the inbound signal.
    inboundCtl.abort();
  }
  return Number(ns) / 1e3 / (handlers * perHandler);
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
for (const pattern of ["none", "inbound", "own"] as const) {
  run(old, pattern);
  run(current, pattern);
  const o: number[] = [];
  const c: number[] = [];
  const ratios: number[] = [];
  for (let r = 0; r < rounds; r++) {
    const a = r % 2 === 0 ? run(old, pattern) : 0;
    const b = run(current, pattern);
    const a2 = r % 2 === 1 ? run(old, pattern) : a;
    o.push(a2);
    c.push(b);
    ratios.push(b / a2);
  }
  console.log(JSON.stringify({ pattern, oldUsPerCall: +median(o).toFixed(3), newUsPerCall: +median(c).toFixed(3), newOverOld: +median(ratios).toFixed(3), rounds, calls, perHandler }));
}
