import { Code, ConnectError, createClient, createContextValues, type HandlerContext } from "@connectrpc/connect";
import { CatalogService } from "../../gen/catalog/v1/catalog_pb.js";
import { createMeshTransport, staticEndpoints, type MeshTransport, type MeshTransportOptions } from "../client/index.js";
import { TRIED_ENDPOINTS } from "../client/transport.js";
import { waitFor } from "../infra/index.js";
import { startTestGrpcServer } from "../testing/grpc-server.js";
import { createCallPolicy, withHedging, type BreakerState, type CallPolicyOptions } from "./index.js";

const cleanup: Array<() => void> = [];
afterEach(() => {
  while (cleanup.length) cleanup.pop()!();
});

interface Replica {
  address: string;
  /** Attempts that reached this replica's handler. */
  attempts: number;
  /** `grpc-previous-rpc-attempts` of each attempt (null on first attempts). */
  previous: Array<string | null>;
  kill(): void;
}

type Behaviour = (ctx: HandlerContext, replica: Replica) => void | Promise<void>;

/** A catalog replica (GetProduct: NO_SIDE_EFFECTS) whose answer is decided by `behave`. */
async function catalogReplica(behave: Behaviour = () => undefined): Promise<Replica> {
  const r: Replica = { address: "", attempts: 0, previous: [], kill: () => undefined };
  const s = await startTestGrpcServer(CatalogService, {
    async getProduct(req, ctx) {
      r.attempts++;
      r.previous.push(ctx.requestHeader.get("grpc-previous-rpc-attempts"));
      await behave(ctx, r);
      return { product: { id: req.id } };
    },
  });
  r.address = s.address;
  r.kill = s.close;
  cleanup.push(s.close);
  return r;
}

const unavailable = () => {
  throw new ConnectError("replica broken", Code.Unavailable);
};

function meshTransport(replicas: Replica[], policy: CallPolicyOptions | undefined, extra: Partial<MeshTransportOptions> = {}): MeshTransport {
  const t = createMeshTransport({
    endpoints: staticEndpoints(...replicas.map((r) => r.address)),
    serviceName: "catalog",
    policy: policy && createCallPolicy(policy),
    ...extra,
  });
  cleanup.push(() => t.close());
  return t;
}

const codeOf = (e: unknown) => ConnectError.from(e).code;
const total = (rs: Replica[]) => rs.reduce((n, r) => n + r.attempts, 0);

interface CallRecord {
  start: number;
  code: Code | undefined;
  message?: string;
}

/** Closed-loop load: `workers` callers, each making calls back to back until `calls` were made; every call is recorded. */
async function closedLoop(workers: number, calls: number, call: (i: number) => Promise<unknown>): Promise<CallRecord[]> {
  const history: CallRecord[] = [];
  let next = 0;
  await Promise.all(
    Array.from({ length: workers }, async () => {
      while (next < calls) {
        const i = next++;
        const start = Date.now();
        history[i] = await call(i).then(
          () => ({ start, code: undefined }),
          (e) => ({ start, code: codeOf(e), message: ConnectError.from(e).message }),
        );
      }
    }),
  );
  return history;
}

/** Open-loop load at a fixed rate (how a gateway sees traffic): calls start on schedule whatever the answers. */
async function openLoop(ratePerSec: number, durationMs: number, call: () => Promise<unknown>): Promise<{ results: Array<Code | undefined>; seconds: number }> {
  const results: Array<Code | undefined> = [];
  const pending: Array<Promise<void>> = [];
  const start = Date.now();
  for (let n = 0; ; n++) {
    const due = start + (n * 1000) / ratePerSec;
    if (due - start >= durationMs) break;
    // Pacing the load generator, not synchronising with the system under test.
    if (due > Date.now()) await new Promise((r) => setTimeout(r, due - Date.now()));
    pending.push(call().then(() => void results.push(undefined), (e) => void results.push(codeOf(e))));
  }
  await Promise.all(pending);
  return { results, seconds: (Date.now() - start) / 1000 };
}

describe("retries across replicas", () => {
  it("sends each retry to a replica not yet tried, with grpc-previous-rpc-attempts", async () => {
    const rs = await Promise.all([1, 2, 3].map(() => catalogReplica(unavailable)));
    const client = createClient(CatalogService, meshTransport(rs, { service: "catalog" }));
    await expect(client.getProduct({ id: "p" })).rejects.toMatchObject({ code: Code.Unavailable });
    expect(rs.map((r) => r.attempts)).toEqual([1, 1, 1]);
    expect(rs.flatMap((r) => r.previous).sort()).toEqual(["1", "2", null].sort());
  });

  it("R8: one replica of three answers Unavailable to everything → ejected, then 100 % success", async () => {
    const bad = await catalogReplica(unavailable);
    const good = await Promise.all([1, 2].map(() => catalogReplica()));
    let ejectedAt: number | undefined;
    const t = meshTransport([bad, ...good], { service: "catalog" }, { balancer: { onEjection: (_k, ejected) => ejected && (ejectedAt ??= Date.now()) } });
    const client = createClient(CatalogService, t);
    const history = await closedLoop(8, 2_000, (i) => client.getProduct({ id: `p${i}` }));
    expect(history).toHaveLength(2_000);
    expect(ejectedAt).toBeDefined();
    expect(t.balancer.ejected()).toEqual([bad.address]);
    // Envoy's 5 consecutive failures eject it (plus what the 7 other workers had in flight at it).
    expect(bad.attempts).toBeGreaterThanOrEqual(5);
    expect(bad.attempts).toBeLessThanOrEqual(5 + 7);
    const after = history.filter((h) => h.start > ejectedAt!);
    expect(after.length).toBeGreaterThan(1_900);
    expect(after.filter((h) => h.code !== undefined)).toEqual([]);
    // Before the ejection a burst of fast failures can drain A6's bucket (10 tokens, no retry at
    // ≤ 5) and fail a call: RELIABILITY allows 0.1 %.
    expect(history.filter((h) => h.code !== undefined).length).toBeLessThanOrEqual(2);
    expect(total(good)).toBeGreaterThanOrEqual(1_998);
  });
  // R1 (kill -9 under load) is proven at process level by the fault battery (tests/faults/scenarios).
});

/** Never answers: waits until the attempt is cancelled (its deadline or the caller), like a SIGSTOPped replica. */
const frozen = (cancelled: { n: number }) => (ctx: HandlerContext) =>
  new Promise<void>((_, reject) => {
    ctx.signal.addEventListener("abort", () => (cancelled.n++, reject(new ConnectError("cancelled", Code.Canceled))), { once: true });
  });

describe("per-try timeouts (R5: a replica stops answering)", () => {
  it("calls move on from a frozen replica within their deadline; it stops getting calls, and its attempts are cancelled", async () => {
    const cancelled = { n: 0 };
    const stuck = await catalogReplica(frozen(cancelled));
    const good = await Promise.all([1, 2].map(() => catalogReplica()));
    // 600 ms deadline ÷ 3 attempts: 200 ms per try.
    const client = createClient(CatalogService, meshTransport([stuck, ...good], { service: "catalog", methods: { GetProduct: { timeoutMs: 600 } } }));
    // A burst first, which the balancer spreads over the three while their costs are equal.
    const burst = await Promise.all(Array.from({ length: 30 }, (_, i) => client.getProduct({ id: `b${i}` }).then(() => undefined, codeOf)));
    expect(burst.filter((c) => c !== undefined)).toEqual([]);
    expect(stuck.attempts).toBeGreaterThan(0);
    const afterBurst = stuck.attempts;
    const history = await closedLoop(6, 570, (i) => client.getProduct({ id: `p${i}` }));
    expect(history.filter((h) => h.code !== undefined)).toEqual([]);
    // Ejected (5 per-try timeouts) or avoided: its per-try timeouts made it the costliest choice.
    expect(stuck.attempts - afterBurst).toBeLessThanOrEqual(2);
    // The per-try deadline reached the server as its grpc-timeout: every attempt there was cancelled.
    await waitFor(() => cancelled.n === stuck.attempts, { timeoutMs: 5_000, what: "every attempt at the frozen replica to be cancelled" });
    expect(total(good)).toBe(600);
  });

  it("five per-try timeouts in a row eject the replica like five failures", async () => {
    const stuck = await catalogReplica(frozen({ n: 0 }));
    const good = await catalogReplica();
    const ejections: string[] = [];
    const client = createClient(
      CatalogService,
      meshTransport([stuck, good], { service: "catalog", perTryTimeoutMs: 50 }, { balancer: { onEjection: (k, e) => e && ejections.push(k) } }),
    );
    // Each call's first attempt is steered to the frozen replica (the good one counts as tried).
    for (let i = 0; i < 5; i++) {
      const contextValues = createContextValues().set(TRIED_ENDPOINTS, new Set([good.address]));
      await expect(client.getProduct({ id: `p${i}` }, { contextValues })).resolves.toMatchObject({ product: { id: `p${i}` } });
      expect(ejections).toEqual(i < 4 ? [] : [stuck.address]);
    }
    expect([stuck.attempts, good.attempts]).toEqual([5, 5]);
  });

  it("the last attempt has the rest of the call's deadline, not one per-try share", async () => {
    // The third attempt (grpc-previous-rpc-attempts 2) answers after 300 ms, three times the per-try timeout.
    const rs = await Promise.all(
      [1, 2, 3].map(() =>
        catalogReplica(async (ctx) => {
          if (ctx.requestHeader.get("grpc-previous-rpc-attempts") !== "2") return frozen({ n: 0 })(ctx);
          await new Promise((r) => setTimeout(r, 300));
        }),
      ),
    );
    const client = createClient(CatalogService, meshTransport(rs, { service: "catalog", perTryTimeoutMs: 100, methods: { GetProduct: { timeoutMs: 5_000 } } }));
    await expect(client.getProduct({ id: "p" })).resolves.toMatchObject({ product: { id: "p" } });
    expect(rs.map((r) => r.attempts)).toEqual([1, 1, 1]);
  });

  it("the call's own deadline still ends it with DeadlineExceeded, every attempt cancelled", async () => {
    const cancelled = { n: 0 };
    const rs = await Promise.all([1, 2, 3].map(() => catalogReplica(frozen(cancelled))));
    const client = createClient(CatalogService, meshTransport(rs, { service: "catalog", random: () => 0 }));
    await expect(client.getProduct({ id: "p" }, { timeoutMs: 300 })).rejects.toMatchObject({ code: Code.DeadlineExceeded });
    // 300 ms is below GetProduct's 666 ms per try: one attempt, cut by the call's deadline.
    expect(total(rs)).toBe(1);
    await expect(client.getProduct({ id: "p" })).rejects.toMatchObject({ code: Code.DeadlineExceeded });
    expect(total(rs)).toBe(4);
    await waitFor(() => cancelled.n === 4, { timeoutMs: 5_000, what: "every attempt to be cancelled" });
  });

  it("an unsafe call is never cut short: it keeps the whole deadline on one replica", async () => {
    const cancelled = { n: 0 };
    const rs = await Promise.all([1, 2].map(() => catalogReplica(frozen(cancelled))));
    const client = createClient(CatalogService, meshTransport(rs, { service: "catalog", perTryTimeoutMs: 50, methods: { GetProduct: { idempotent: false } } }));
    await expect(client.getProduct({ id: "p" }, { timeoutMs: 300 })).rejects.toMatchObject({ code: Code.DeadlineExceeded });
    expect(total(rs)).toBe(1);
  });
});

describe("R9: every replica failing", () => {
  it("default policy: retries throttled, then the breaker fails calls fast without attempts", async () => {
    const rs = await Promise.all([1, 2, 3].map(() => catalogReplica(unavailable)));
    const states: BreakerState[] = [];
    const client = createClient(CatalogService, meshTransport(rs, { service: "catalog", onBreakerStateChange: (_s, st) => states.push(st) }));
    const { results, seconds } = await openLoop(300, 2_000, () => client.getProduct({ id: "p" }));
    const attempts = total(rs);
    expect(results.filter((c) => c !== Code.Unavailable && c !== Code.DeadlineExceeded)).toEqual([]);
    expect(attempts).toBeLessThanOrEqual(1.2 * results.length + 10 * seconds);
    // A6's bucket allows 4 retries; the breaker opens once 20 calls have failed and then fails
    // calls at once (only calls already started when it opened still reach a replica).
    expect(states).toEqual(["open"]);
    expect(attempts).toBeLessThan(0.5 * results.length);
    expect(results.length).toBeGreaterThan(500);
  });

  it("budget alone (no token bucket, no breaker): attempts ≤ 1.2 × requests + 10/s × duration", async () => {
    const rs = await Promise.all([1, 2, 3].map(() => catalogReplica(unavailable)));
    const client = createClient(CatalogService, meshTransport(rs, { service: "catalog", throttle: false, breaker: false }));
    const { results, seconds } = await openLoop(300, 2_000, () => client.getProduct({ id: "p" }));
    const requests = results.length;
    const attempts = total(rs);
    // No call succeeds; on a busy machine a call may also run out of its 2 s during backoffs.
    expect(results.filter((c) => c !== Code.Unavailable && c !== Code.DeadlineExceeded)).toEqual([]);
    // + 10: the budget's floor starts with one second's worth (see RetryBudget).
    expect(attempts).toBeLessThanOrEqual(1.2 * requests + 10 * seconds + 10);
    // Without the budget every call would make 3 attempts; it really granted some retries.
    expect(attempts).toBeGreaterThan(requests);
  });

  it("non-retryable codes are never retried: attempts = requests", async () => {
    const codes = [
      Code.InvalidArgument,
      Code.NotFound,
      Code.FailedPrecondition,
      Code.AlreadyExists,
      Code.PermissionDenied,
      Code.Unauthenticated,
      Code.OutOfRange,
      Code.Unimplemented,
      Code.Internal,
      Code.Unknown,
      Code.DataLoss,
      Code.DeadlineExceeded,
      Code.ResourceExhausted,
    ];
    let n = 0;
    const rs = await Promise.all(
      [1, 2, 3].map(() =>
        catalogReplica(() => {
          throw new ConnectError("no", codes[n++ % codes.length]);
        }),
      ),
    );
    const client = createClient(CatalogService, meshTransport(rs, { service: "catalog", breaker: false }));
    const seen: Code[] = [];
    for (let i = 0; i < codes.length * 4; i++) seen.push(await client.getProduct({ id: "p" }).then(() => undefined as never, codeOf));
    expect(total(rs)).toBe(codes.length * 4);
    expect(seen).toEqual(Array.from({ length: codes.length * 4 }, (_, i) => codes[i % codes.length]));
  });
});

describe("pushback", () => {
  it("waits the server's grpc-retry-pushback-ms before retrying", async () => {
    const arrivals: number[] = [];
    const r = await catalogReplica(() => {
      arrivals.push(Date.now());
      if (arrivals.length === 1) throw new ConnectError("busy", Code.Unavailable, { "grpc-retry-pushback-ms": "300" });
    });
    const client = createClient(CatalogService, meshTransport([r], { service: "catalog" }));
    await client.getProduct({ id: "p" });
    expect(arrivals).toHaveLength(2);
    // The A6 backoff of a first retry is < 100 ms: ≥ 300 ms can only come from the pushback.
    expect(arrivals[1] - arrivals[0]).toBeGreaterThanOrEqual(299);
    expect(arrivals[1] - arrivals[0]).toBeLessThan(600);
  });

  it("does not retry on a negative pushback", async () => {
    const r = await catalogReplica(() => {
      throw new ConnectError("go away", Code.Unavailable, { "grpc-retry-pushback-ms": "-1" });
    });
    const other = await catalogReplica();
    const client = createClient(CatalogService, meshTransport([r, other], { service: "catalog" }));
    let failed = 0;
    for (let i = 0; i < 20; i++) await client.getProduct({ id: "p" }).catch((e) => (expect(codeOf(e)).toBe(Code.Unavailable), failed++));
    // Every call that reached `r` failed there: none went on to `other`.
    expect(failed).toBe(r.attempts);
    expect(r.attempts + other.attempts).toBe(20);
    expect(r.attempts).toBeGreaterThan(0);
  });
});

describe("circuit breaker in the transport", () => {
  it("opens, fails fast without attempts, lets one probe through and closes", async () => {
    let healthy = false;
    const rs = await Promise.all([1, 2].map(() => catalogReplica(() => (healthy ? undefined : unavailable()))));
    const states: BreakerState[] = [];
    const { ConsecutiveBreaker } = await import("cockatiel");
    const client = createClient(
      CatalogService,
      meshTransport(rs, {
        service: "catalog",
        maxAttempts: 1,
        breaker: { halfOpenAfterMs: 200, breaker: () => new ConsecutiveBreaker(3) },
        onBreakerStateChange: (_s, st) => states.push(st),
      }),
    );
    for (let i = 0; i < 3; i++) await expect(client.getProduct({ id: "p" })).rejects.toMatchObject({ code: Code.Unavailable });
    expect(states).toEqual(["open"]);
    const before = total(rs);
    for (let i = 0; i < 10; i++) await expect(client.getProduct({ id: "p" })).rejects.toMatchObject({ code: Code.Unavailable });
    expect(total(rs)).toBe(before);
    healthy = true;
    await waitFor(() => client.getProduct({ id: "p" }).then(() => true, () => false), { timeoutMs: 3_000, what: "the circuit to close" });
    expect(states).toEqual(["open", "half-open", "closed"]);
    expect(total(rs)).toBe(before + 1);
  });
});

describe("hedging", () => {
  it("answers from the hedge when the first replica is slow, and cancels the loser", async () => {
    let slowStarted = 0;
    let slowCancelled = 0;
    const slow = await catalogReplica(async (ctx) => {
      slowStarted++;
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, 2_000);
        ctx.signal.addEventListener("abort", () => (clearTimeout(t), slowCancelled++, resolve()), { once: true });
      });
    });
    const fast = await catalogReplica();
    const policy = createCallPolicy({ service: "catalog", methods: { GetProduct: { hedgeAfterMs: 50 } } });
    const t = createMeshTransport({ endpoints: staticEndpoints(slow.address, fast.address), serviceName: "catalog", policy });
    cleanup.push(() => t.close());
    const client = createClient(CatalogService, withHedging(t, policy));
    const latencies: number[] = [];
    for (let i = 0; i < 12; i++) {
      const t0 = Date.now();
      await client.getProduct({ id: `p${i}` });
      latencies.push(Date.now() - t0);
    }
    expect(Math.max(...latencies)).toBeLessThan(1_000);
    expect(slowStarted).toBeGreaterThan(0);
    await waitFor(() => slowCancelled === slowStarted, { timeoutMs: 2_000, what: "the slow attempts to be cancelled" });
    expect(fast.attempts).toBe(12);
  });
});
