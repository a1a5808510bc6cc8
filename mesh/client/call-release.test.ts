import { join } from "node:path";
import type { ManagedProcess } from "../infra/index.js";
import { atMost, runReleaseFixture, type Held } from "../testing/call-release.js";

/**
 * A finished client call must not stay reachable: not the request message the caller passed (the
 * transport's logical call keeps it for retries, so a request still reachable means its call, with
 * its grpc-js attempt, is too), nor the response or error, the CallOptions, the AbortController
 * and its signal (each attempt listens on it), or the context values (the transport's hooks and
 * the tracing interceptor's span read them). The fixture (fixtures/call-release-client.ts) runs a
 * Meshwork server and a client over `createMeshTransport` in a child process started with
 * --expose-gc, so jest's own flags do not matter; it makes every kind of call (unary ok, error,
 * client deadline, client abort, retried; server streams read to the end and aborted
 * mid-stream), waits until all have finished, forces GCs and reports what is still held.
 *
 * A call's own AbortController dies with the call, so a listener a call forgets on its signal
 * holds nothing there: the *-shared calls all pass one long-lived signal (as a handler passes its
 * inbound call's to each of its calls), where such a listener would hold the call.
 *
 * The unary-kept calls are the control: the fixture itself holds their objects, which must be
 * counted as reachable, else the measurement could not see a leak.
 */

type Scenario = "unary-ok" | "unary-error" | "unary-deadline" | "unary-cancel" | "unary-retry" | "stream-ok" | "stream-cancel" | "unary-shared" | "stream-shared" | "unary-kept";
type Kind = "request" | "response" | "error" | "options" | "controller" | "signal" | "values";
type PerScenario = Record<Scenario, number>;
/** How many objects are still reachable, and the call ids of the first 20. */

/** The fixture's RESULT line. */
interface Result {
  mode: string;
  /** How many objects of each kind were tracked. */
  tracked: Record<Kind, number>;
  /** The code each call ended with ("OK" for success), counted by scenario. */
  outcomes: Record<Scenario, Record<string, number>>;
  /** Handler runs on the server, by scenario (a retried call counts each attempt). */
  attempts: PerScenario;
  beforeGc: Record<Kind, PerScenario>;
  afterGc: Record<Kind, PerScenario>;
  /** Of what should have been collected (all but unary-kept's), what is still reachable. */
  held: Record<Kind, Held>;
  /** Abort listeners left on the *-shared calls' signal. */
  sharedListeners: number;
  gcRounds: number;
  gcMs: number;
  callsMs: number;
}

const KINDS: Kind[] = ["request", "response", "error", "options", "controller", "signal", "values"];

/**
 * What may still be reachable after the GCs, of each kind (of 360 requests and options, 180
 * controllers, signals and context values that should go): none. Every run so far held none of
 * any kind in either mode. Unlike the server (whose HTTP Date-header timer can carry one stream's
 * context for < 1 s), nothing on the client side outlives a call by design: the grpc-js deadline
 * timer, the retry backoff timer and the abort listeners go when an attempt ends, and the fixture
 * runs GC rounds for up to 5 s for anything on its way out. A leak holds tens to hundreds here:
 * keeping every finished logical call in an array held all 360 requests; an attempt that leaves
 * its abort listener on the signal held the 20 unary-shared calls.
 */
const MAX_HELD = 0;

const children: ManagedProcess[] = [];
afterEach(async () => {
  await Promise.all(children.splice(0).map((c) => c.kill()));
});

const runFixture = (mode: "deployed" | "bare") => runReleaseFixture<Result>(join(__dirname, "fixtures/call-release-client.ts"), [mode], children);

function expectReleased(r: Result, retried: { outcome: Record<string, number>; attempts: number }): void {
  expect(r.outcomes).toEqual({
    "unary-ok": { OK: 200 },
    "unary-error": { NotFound: 20 },
    "unary-deadline": { DeadlineExceeded: 20 },
    "unary-cancel": { Canceled: 20 },
    "unary-retry": retried.outcome,
    "stream-ok": { OK: 20 },
    "stream-cancel": { Canceled: 20 },
    "unary-shared": { OK: 20 },
    "stream-shared": { OK: 20 },
    "unary-kept": { OK: 10 },
  });
  expect(r.attempts).toEqual({
    "unary-ok": 200,
    "unary-error": 20,
    "unary-deadline": 20,
    "unary-cancel": 20,
    "unary-retry": retried.attempts,
    "stream-ok": 20,
    "stream-cancel": 20,
    "unary-shared": 20,
    "stream-shared": 20,
    "unary-kept": 10,
  });
  expect({
    held: r.held,
    sharedListeners: r.sharedListeners,
    // The control: the objects the fixture holds are counted as reachable.
    kept: Object.fromEntries(KINDS.map((k) => [k, r.afterGc[k]["unary-kept"]])),
  }).toEqual({
    held: Object.fromEntries(KINDS.map((k) => [k, atMost(MAX_HELD)])),
    sharedListeners: 0,
    kept: { request: 10, response: 10, error: 0, options: 10, controller: 10, signal: 10, values: 10 },
  });
}

describe("finished client calls are released", () => {
  it("as services run: startTelemetry, the default policy and the tracing interceptor", async () => {
    // Each retried call's first attempt fails Unavailable before any header; the policy retries it.
    expectReleased(await runFixture("deployed"), { outcome: { OK: 20 }, attempts: 40 });
  });

  it("bare: no policy, no interceptors, no telemetry", async () => {
    // Without a policy there is one attempt: the "retried" calls end with that attempt's error.
    expectReleased(await runFixture("bare"), { outcome: { Unavailable: 20 }, attempts: 20 });
  });
});
