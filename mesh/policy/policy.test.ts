import { create, type DescMethod, type Message } from "@bufbuild/protobuf";
import { Code, ConnectError } from "@connectrpc/connect";
import { ConsecutiveBreaker } from "cockatiel";
import { CatalogService, GetProductRequestSchema } from "../../gen/catalog/v1/catalog_pb.js";
import { InventoryService, ReserveRequestSchema, WatchStockRequestSchema } from "../../gen/inventory/v1/inventory_pb.js";
import { CreateOrderRequestSchema, OrderService } from "../../gen/orders/v1/orders_pb.js";
import type { AttemptInfo } from "../client/index.js";
import { runWithDeadline } from "../deadline/index.js";
import { AttemptError, NEVER_ABORTED } from "../grpc/index.js";
import {
  CircuitBreaker,
  createCallPolicy,
  decideRetry,
  parsePushback,
  retryBackoffMs,
  RetryBudget,
  RetryThrottle,
  type BreakerState,
  type FailedAttempt,
  type RetryVerdict,
} from "./index.js";

afterEach(() => jest.useRealTimers());

describe("backoff (A6 full jitter)", () => {
  it("stays within [0, min(initial·mult^(n−1), max))", () => {
    const opts = { initialMs: 100, maxMs: 1_000, multiplier: 2 };
    const ceilings = [100, 200, 400, 800, 1_000, 1_000];
    ceilings.forEach((ceiling, i) => {
      expect(retryBackoffMs(i + 1, opts, () => 0)).toBe(0);
      expect(retryBackoffMs(i + 1, opts, () => 0.999_999)).toBeCloseTo(ceiling, 2);
      for (let k = 0; k < 200; k++) {
        const d = retryBackoffMs(i + 1, opts);
        expect(d).toBeGreaterThanOrEqual(0);
        expect(d).toBeLessThan(ceiling);
      }
    });
    // The multiplier is honoured (cockatiel's full-jitter generator always doubles).
    expect(retryBackoffMs(3, { initialMs: 10, maxMs: 10_000, multiplier: 3 }, () => 0.5)).toBe(45);
  });
});

describe("retry throttle (A6 token bucket)", () => {
  it("five failures stop retries; one success re-enables them", () => {
    const t = new RetryThrottle({ maxTokens: 10, tokenRatio: 0.1 });
    for (let i = 1; i <= 4; i++) {
      t.onFailure();
      expect(t.tokens).toBe(10 - i);
      expect(t.allowsRetry()).toBe(true);
    }
    t.onFailure();
    expect(t.tokens).toBe(5); // 5 ≤ 10/2: throttled
    expect(t.allowsRetry()).toBe(false);
    t.onSuccess();
    expect(t.tokens).toBe(5.1); // exact, no float drift
    expect(t.allowsRetry()).toBe(true);
  });

  it("is bounded by 0 and maxTokens", () => {
    const t = new RetryThrottle();
    for (let i = 0; i < 50; i++) t.onSuccess();
    expect(t.tokens).toBe(10);
    for (let i = 0; i < 50; i++) t.onFailure();
    expect(t.tokens).toBe(0);
    for (let i = 0; i < 51; i++) t.onSuccess();
    expect(t.tokens).toBe(5.1);
    expect(t.allowsRetry()).toBe(true);
  });
});

describe("retry budget (Linkerd: 20 % + 10/s over 10 s)", () => {
  it("allows 20 % of requests plus the per-second floor accrued since creation", () => {
    const t0 = 1_000_000;
    const b = new RetryBudget({}, t0);
    for (let i = 0; i < 100; i++) b.recordRequest(t0);
    // 0.2 × 100 + 10/s × 1 s (the floor starts at one second's worth).
    let granted = 0;
    while (b.tryRetry(t0)) granted++;
    expect(granted).toBe(30);
    // Half a second later the floor has accrued 5 more.
    granted = 0;
    while (b.tryRetry(t0 + 500)) granted++;
    expect(granted).toBe(5);
  });

  it("caps the floor at one window and forgets requests and retries older than the window", () => {
    const t0 = 2_000_000;
    const b = new RetryBudget({}, t0);
    // After 30 s idle the floor is 10/s × 10 s, not 300.
    let granted = 0;
    while (b.tryRetry(t0 + 30_000)) granted++;
    expect(granted).toBe(100);
    expect(b.tryRetry(t0 + 35_000)).toBe(false);
    // 11 s later those retries have left the window.
    granted = 0;
    while (b.tryRetry(t0 + 41_000)) granted++;
    expect(granted).toBe(100);
  });

  it("keeps retries ≤ 20 % of requests + 10/s over a long steady failure", () => {
    const t0 = 3_000_000;
    const b = new RetryBudget({}, t0);
    let requests = 0;
    let retries = 0;
    // 200 requests/s for 60 s, each wanting 2 retries.
    for (let ms = 0; ms < 60_000; ms += 5) {
      b.recordRequest(t0 + ms);
      requests++;
      for (let r = 0; r < 2; r++) if (b.tryRetry(t0 + ms)) retries++;
    }
    expect(retries).toBeLessThanOrEqual(0.2 * requests + 10 * (60 + 1));
    expect(retries).toBeGreaterThan(0.2 * requests); // the floor is really granted
  });
});

describe("circuit breaker", () => {
  const failing = (b: CircuitBreaker, n: number) => {
    for (let i = 0; i < n; i++) b.admit()("failure");
  };

  it("closed → open → half-open → closed, and half-open → open on a failed probe", () => {
    jest.useFakeTimers({ now: 1_000_000 });
    const states: BreakerState[] = [];
    const b = new CircuitBreaker("inventory", { halfOpenAfterMs: 5_000, breaker: () => new ConsecutiveBreaker(3), onStateChange: (s) => states.push(s) });
    failing(b, 2);
    expect(b.state).toBe("closed");
    b.admit()("success"); // resets the consecutive count
    failing(b, 3);
    expect(b.state).toBe("open");
    let err: ConnectError | undefined;
    try {
      b.admit();
    } catch (e) {
      err = e as ConnectError;
    }
    expect(err?.code).toBe(Code.Unavailable);
    expect(err?.rawMessage).toContain("inventory");

    jest.advanceTimersByTime(4_999);
    expect(() => b.admit()).toThrow(ConnectError);
    jest.advanceTimersByTime(1);
    const probe = b.admit();
    expect(b.state).toBe("half-open");
    // Exactly one probe: others fail fast meanwhile.
    expect(() => b.admit()).toThrow(expect.objectContaining({ code: Code.Unavailable }));
    probe("failure");
    expect(b.state).toBe("open");
    expect(() => b.admit()).toThrow(ConnectError);

    jest.advanceTimersByTime(5_000);
    const probe2 = b.admit();
    probe2("success");
    expect(b.state).toBe("closed");
    b.admit()("success");
    expect(states).toEqual(["open", "half-open", "open", "half-open", "closed"]);
  });

  it("a neutral probe (cancelled) lets the next call probe; stale results of calls admitted while closed are ignored", () => {
    jest.useFakeTimers({ now: 1_000_000 });
    const b = new CircuitBreaker("catalog", { halfOpenAfterMs: 1_000, breaker: () => new ConsecutiveBreaker(1) });
    const slow = b.admit();
    b.admit()("failure");
    expect(b.state).toBe("open");
    jest.advanceTimersByTime(1_000);
    const probe = b.admit();
    slow("success"); // admitted before the circuit opened: must not close it
    expect(b.state).toBe("half-open");
    probe("neutral");
    expect(b.state).toBe("half-open");
    b.admit()("success");
    expect(b.state).toBe("closed");
  });

  it("by default opens at > 50 % failures once 20 requests were seen in 10 s (Hystrix)", () => {
    jest.useFakeTimers({ now: 1_000_000 });
    const b = new CircuitBreaker("orders");
    failing(b, 19); // below the request volume threshold: stays closed
    expect(b.state).toBe("closed");
    failing(b, 1);
    expect(b.state).toBe("open");

    const c = new CircuitBreaker("orders");
    for (let i = 0; i < 30; i++) c.admit()(i % 2 === 0 ? "success" : "failure"); // exactly 50 %
    expect(c.state).toBe("closed");
    c.admit()("failure");
    expect(c.state).toBe("open");
  });
});

describe("retry decision table", () => {
  const base = (code: Code, safe: boolean): FailedAttempt => ({ code, message: "from the handler", headersReceived: false, safe, pushback: undefined });
  const codes = Object.values(Code).filter((v): v is Code => typeof v === "number");
  // [safe method, unsafe method] for a plain answer from a server (no pushback, no headers).
  const expected: Record<string, [RetryVerdict, RetryVerdict]> = {
    Canceled: ["retry", "no"], // a stream reset we did not ask for
    Unknown: ["no", "no"],
    InvalidArgument: ["no", "no"],
    DeadlineExceeded: ["no", "no"],
    NotFound: ["no", "no"],
    AlreadyExists: ["no", "no"],
    PermissionDenied: ["no", "no"],
    ResourceExhausted: ["no", "no"], // without pushback
    FailedPrecondition: ["no", "no"],
    Aborted: ["retry", "no"], // connect-node's ECONNRESET (trap 6)
    OutOfRange: ["no", "no"],
    Unimplemented: ["no", "no"],
    Internal: ["no", "no"],
    Unavailable: ["retry", "no"],
    DataLoss: ["no", "no"],
    Unauthenticated: ["no", "no"],
  };
  const defaults = new Set([Code.Unavailable]);

  it.each(codes.map((c) => [Code[c], c] as const))("%s", (name, code) => {
    expect(Object.keys(expected)).toContain(name);
    expect(decideRetry(base(code, true), defaults).verdict).toBe(expected[name][0]);
    expect(decideRetry(base(code, false), defaults).verdict).toBe(expected[name][1]);
  });

  it.each<[string, Partial<FailedAttempt>, RetryVerdict, RetryVerdict, boolean]>([
    // name, facts, safe, unsafe, costs a throttle token
    ["connection refused (never reached a server)", { code: Code.Unavailable, message: "No connection established. Last error: connect ECONNREFUSED 127.0.0.1:1" }, "transparent", "transparent", false],
    ["HTTP/2 REFUSED_STREAM", { code: Code.Unavailable, message: "Stream refused by server" }, "transparent", "transparent", false],
    // A vanished endpoint is ejection's business, not an overload signal: no throttle token (R1).
    ["connection dropped mid-call", { code: Code.Unavailable, message: "Connection dropped" }, "retry", "no", false],
    ["replica killed mid-call (ECONNRESET)", { code: Code.Unavailable, message: "read ECONNRESET" }, "retry", "no", false],
    ["RST_STREAM seen as Internal", { code: Code.Internal, message: "Received RST_STREAM with code 2 (Internal server error)" }, "retry", "no", true],
    ["headers already received", { code: Code.Unavailable, headersReceived: true }, "no", "no", true],
    ["headers received, streaming call, connection lost", { code: Code.Unavailable, message: "read ECONNRESET", headersReceived: true, unary: false }, "no", "no", false],
    // A unary caller sees nothing before the status: a safe call cut off after headers is redone.
    ["headers received, unary call, connection lost", { code: Code.Unavailable, message: "read ECONNRESET", headersReceived: true, unary: true }, "retry", "no", false],
    ["headers received, unary call, stream reset", { code: Code.Internal, message: "Received RST_STREAM with code 2", headersReceived: true, unary: true }, "retry", "no", true],
    ["headers received, unary call, application Unavailable", { code: Code.Unavailable, headersReceived: true, unary: true }, "no", "no", true],
    ["negative pushback", { code: Code.Unavailable, pushback: "stop" }, "no", "no", true],
    ["ResourceExhausted with pushback (shed)", { code: Code.ResourceExhausted, pushback: 50 }, "retry", "no", false],
    ["Unavailable with pushback 0", { code: Code.Unavailable, pushback: 0 }, "retry", "no", true],
    ["application NotFound", { code: Code.NotFound }, "no", "no", false],
    // The endpoint did not answer within the attempt's share of the deadline (R5): ejection's
    // business like a lost connection, so no token; the call's own deadline is never retried.
    ["per-try timeout", { code: Code.DeadlineExceeded, perTryTimeout: true, unary: true }, "retry", "no", false],
    ["per-try timeout after headers, unary call", { code: Code.DeadlineExceeded, perTryTimeout: true, unary: true, headersReceived: true }, "retry", "no", false],
    ["per-try timeout after headers, streaming call", { code: Code.DeadlineExceeded, perTryTimeout: true, unary: false, headersReceived: true }, "no", "no", false],
    ["the call's deadline", { code: Code.DeadlineExceeded, perTryTimeout: false, unary: true }, "no", "no", false],
    ["per-try flag on another code is that code's rule", { code: Code.NotFound, perTryTimeout: true, unary: true }, "no", "no", false],
  ])("%s", (_name, facts, safe, unsafe, costs) => {
    const d1 = decideRetry({ ...base(Code.Unknown, true), ...facts }, defaults);
    const d2 = decideRetry({ ...base(Code.Unknown, false), ...facts }, defaults);
    expect([d1.verdict, d2.verdict]).toEqual([safe, unsafe]);
    expect(d1.countsForThrottle).toBe(costs);
  });

  it("never retries DeadlineExceeded, even when configured retryable", () => {
    expect(decideRetry(base(Code.DeadlineExceeded, true), new Set([Code.DeadlineExceeded])).verdict).toBe("no");
    expect(decideRetry(base(Code.Internal, true), new Set([Code.Internal])).verdict).toBe("retry");
  });

  it("parses grpc-retry-pushback-ms like A6", () => {
    expect(parsePushback(null)).toBeUndefined();
    expect(parsePushback("250")).toBe(250);
    expect(parsePushback("0")).toBe(0);
    expect(parsePushback("-1")).toBe("stop");
    expect(parsePushback("soon")).toBe("stop");
    expect(parsePushback("1.5")).toBe("stop");
    expect(parsePushback("300, 300")).toBe(300);
    expect(parsePushback("300, 20")).toBe("stop");
  });
});

describe("createCallPolicy hooks", () => {
  const m = (svc: { methods: DescMethod[] }, name: string) => svc.methods.find((x) => x.name === name)!;
  const getProduct = m(CatalogService, "GetProduct");
  const reserve = m(InventoryService, "Reserve");
  const watchStock = m(InventoryService, "WatchStock");
  const createOrder = m(OrderService, "CreateOrder");
  const info = (method: DescMethod, request: Message, code: Code, attempt = 1, trailer?: Record<string, string>, perTryTimeout = false): AttemptInfo => ({
    method,
    request,
    header: new Headers(),
    attempt,
    error: new AttemptError(new ConnectError("failed", code, trailer), false),
    deadline: undefined,
    perTryTimeout,
  });

  it("links a call's signal to the inbound one, reusing one combined signal per caller signal in a handler", () => {
    const p = createCallPolicy({ service: "catalog" });
    const own = new AbortController();
    expect(p.signal!(getProduct, own.signal)).toBe(own.signal);
    const inbound = new AbortController();
    const other = new AbortController();
    runWithDeadline(undefined, inbound.signal, () => {
      expect(p.signal!(getProduct, NEVER_ABORTED)).toBe(inbound.signal);
      expect(p.signal!(getProduct, inbound.signal)).toBe(inbound.signal);
      const a = p.signal!(getProduct, own.signal);
      expect(p.signal!(reserve, own.signal)).toBe(a);
      const b = p.signal!(getProduct, other.signal);
      expect(b).not.toBe(a);
      other.abort(new Error("caller gave up"));
      expect(b.aborted).toBe(true);
      expect(a.aborted).toBe(false);
      inbound.abort(new ConnectError("inbound cancelled", Code.Canceled));
      expect(a.aborted).toBe(true);
      expect(ConnectError.from(a.reason).code).toBe(Code.Canceled);
      expect(own.signal.aborted).toBe(false);
    });
  });

  it("takes the shortest of the caller's timeout, the inbound remaining time and the method's timeout", () => {
    const p = createCallPolicy({ service: "catalog", methods: { GetProduct: { timeoutMs: 1_500 } } });
    expect(p.timeoutMs!(getProduct, undefined)).toBe(1_500);
    expect(p.timeoutMs!(getProduct, 400)).toBe(400);
    expect(p.timeoutMs!(reserve, undefined)).toBe(5_000); // from inventory.proto
    expect(p.timeoutMs!(watchStock, undefined)).toBeUndefined(); // timeout {}: none
    runWithDeadline(Date.now() + 300, undefined, () => {
      const t = p.timeoutMs!(getProduct, 1_000)!;
      expect(t).toBeLessThanOrEqual(300);
      expect(t).toBeGreaterThan(250);
      expect(p.timeoutMs!(watchStock, undefined)).toBeLessThanOrEqual(300);
    });
    expect(() => p.timeoutMs!(getProduct, 4)).toThrow(expect.objectContaining({ code: Code.DeadlineExceeded }));
  });

  it("retries a non-idempotent method only with a non-empty idempotency_key", () => {
    const p = createCallPolicy({ service: "orders", random: () => 0.5 });
    expect(p.retryDelay!(info(createOrder, create(CreateOrderRequestSchema, { idempotencyKey: "" }), Code.Unavailable))).toBeUndefined();
    expect(p.retryDelay!(info(createOrder, create(CreateOrderRequestSchema, { idempotencyKey: "k-1" }), Code.Unavailable))).toBe(50);
    const forced = createCallPolicy({ service: "orders", methods: { CreateOrder: { idempotent: false } } });
    expect(forced.retryDelay!(info(createOrder, create(CreateOrderRequestSchema, { idempotencyKey: "k-1" }), Code.Unavailable))).toBeUndefined();
    expect(p.retryDelay!(info(reserve, create(ReserveRequestSchema), Code.Unavailable))).toBe(50);
  });

  it("stops at maxAttempts (capped at 5) and uses the pushback as the delay", () => {
    const req = create(GetProductRequestSchema, { id: "p" });
    const p = createCallPolicy({ service: "catalog", maxAttempts: 9, throttle: false, budget: false, random: () => 0.5 });
    expect(p.retryDelay!(info(getProduct, req, Code.Unavailable, 4))).toBe(400);
    expect(p.retryDelay!(info(getProduct, req, Code.Unavailable, 5))).toBeUndefined();
    const three = createCallPolicy({ service: "catalog", throttle: false, budget: false });
    expect(three.retryDelay!(info(getProduct, req, Code.Unavailable, 3))).toBeUndefined();
    expect(three.retryDelay!(info(getProduct, req, Code.Unavailable, 1, { "grpc-retry-pushback-ms": "750" }))).toBe(750);
    expect(three.retryDelay!(info(getProduct, req, Code.Unavailable, 1, { "grpc-retry-pushback-ms": "-1" }))).toBeUndefined();
  });

  it("fails fast once the token bucket is at half; successes earn retries back", () => {
    const req = create(GetProductRequestSchema, { id: "p" });
    const p = createCallPolicy({ service: "catalog", budget: false });
    const delays = [1, 2, 3, 4, 5].map(() => p.retryDelay!(info(getProduct, req, Code.Unavailable, 1)));
    expect(delays.slice(0, 4).every((d) => d !== undefined)).toBe(true);
    expect(delays[4]).toBeUndefined(); // tokens 5 ≤ 5
    // Like gRPC core, a failure takes its token before the check: at 5.1 the next failure lands on
    // 4.1 and is not retried; eleven successes (5 + 1.1) leave room for one retry (6.1 − 1 > 5).
    p.onAttempt!(getProduct, "e", "success", undefined, 1);
    expect(p.throttle!.tokens).toBe(5.1);
    expect(p.retryDelay!(info(getProduct, req, Code.Unavailable, 1))).toBeUndefined();
    for (let i = 0; i < 20; i++) p.onAttempt!(getProduct, "e", "success", undefined, 1); // 4.1 → 6.1
    expect(p.retryDelay!(info(getProduct, req, Code.Unavailable, 1))).toBeDefined();
    expect(p.throttle!.tokens).toBe(5.1);
    // Application errors neither take nor give tokens.
    expect(p.retryDelay!(info(getProduct, req, Code.NotFound, 1))).toBeUndefined();
    p.onAttempt!(getProduct, "e", "success", Code.NotFound, 1);
    expect(p.throttle!.tokens).toBe(5.1);
  });

  it("per-try deadline: the method's timeout ÷ maxAttempts for safe unary calls, the rest of the call's deadline for the last attempt", () => {
    jest.useFakeTimers({ now: 1_000_000 });
    const now = Date.now();
    const p = createCallPolicy({ service: "x" });
    const get = create(GetProductRequestSchema, { id: "p" });
    const callDeadline = now + 2_000;
    // GetProduct: 2 s ÷ 3 attempts; the third gets what is left.
    expect(p.attemptDeadline!(getProduct, get, callDeadline, 1)).toBe(now + 666);
    expect(p.attemptDeadline!(getProduct, get, callDeadline, 2)).toBe(now + 666);
    expect(p.attemptDeadline!(getProduct, get, callDeadline, 3)).toBe(callDeadline);
    // Never beyond the call's deadline, nor leaving it less than the 5 ms margin.
    expect(p.attemptDeadline!(getProduct, get, now + 400, 1)).toBe(now + 400);
    expect(p.attemptDeadline!(getProduct, get, now + 670, 1)).toBe(now + 670);
    expect(p.attemptDeadline!(getProduct, get, now + 672, 1)).toBe(now + 666);
    // Reserve (IDEMPOTENT, 5 s): 1,666 ms.
    expect(p.attemptDeadline!(reserve, create(ReserveRequestSchema), now + 5_000, 1)).toBe(now + 1_666);
    // CreateOrder (10 s) is safe only with an idempotency key.
    expect(p.attemptDeadline!(createOrder, create(CreateOrderRequestSchema, { idempotencyKey: "" }), now + 10_000, 1)).toBe(now + 10_000);
    expect(p.attemptDeadline!(createOrder, create(CreateOrderRequestSchema, { idempotencyKey: "k" }), now + 10_000, 1)).toBe(now + 3_333);
    // Streams have none.
    expect(p.attemptDeadline!(watchStock, create(WatchStockRequestSchema), undefined, 1)).toBeUndefined();
    expect(p.attemptDeadline!(watchStock, create(WatchStockRequestSchema), now + 1_000, 1)).toBe(now + 1_000);

    const tuned = createCallPolicy({ service: "x", perTryTimeoutMs: 100, methods: { Reserve: { perTryTimeoutMs: 0 }, GetStock: { idempotent: false } } });
    expect(tuned.attemptDeadline!(getProduct, get, callDeadline, 1)).toBe(now + 100);
    expect(tuned.attemptDeadline!(getProduct, get, undefined, 2)).toBe(now + 100); // no call deadline: still one per try
    expect(tuned.attemptDeadline!(reserve, create(ReserveRequestSchema), callDeadline, 1)).toBe(callDeadline); // 0 = none
    expect(tuned.attemptDeadline!(m(InventoryService, "GetStock"), create(ReserveRequestSchema), callDeadline, 1)).toBe(callDeadline); // not safe
    expect(createCallPolicy({ service: "x", maxAttempts: 1 }).attemptDeadline!(getProduct, get, callDeadline, 1)).toBe(callDeadline);
    expect(createCallPolicy({ service: "x", maxAttempts: 4 }).attemptDeadline!(getProduct, get, callDeadline, 1)).toBe(now + 500);
  });

  it("retries a per-try timeout of a safe call without taking a throttle token; never the call's own deadline", () => {
    const get = create(GetProductRequestSchema, { id: "p" });
    const p = createCallPolicy({ service: "catalog", random: () => 0.5 });
    for (let i = 0; i < 10; i++) expect(p.retryDelay!(info(getProduct, get, Code.DeadlineExceeded, 1, undefined, true))).toBe(50);
    expect(p.throttle!.tokens).toBe(10);
    expect(p.retryDelay!(info(getProduct, get, Code.DeadlineExceeded, 3, undefined, true))).toBeUndefined(); // maxAttempts
    expect(p.retryDelay!(info(getProduct, get, Code.DeadlineExceeded, 1))).toBeUndefined();
    expect(p.retryDelay!(info(createOrder, create(CreateOrderRequestSchema), Code.DeadlineExceeded, 1, undefined, true))).toBeUndefined();
  });

  it("hedges only unary methods without side effects, and only when configured", () => {
    const p = createCallPolicy({ service: "x", methods: { GetProduct: { hedgeAfterMs: 20 }, Reserve: { hedgeAfterMs: 20 }, WatchStock: { hedgeAfterMs: 20 } } });
    expect(p.hedgeAfterMs(getProduct)).toBe(20);
    expect(p.hedgeAfterMs(reserve)).toBeUndefined(); // IDEMPOTENT is not NO_SIDE_EFFECTS
    expect(p.hedgeAfterMs(watchStock)).toBeUndefined();
    expect(createCallPolicy({ service: "x" }).hedgeAfterMs(getProduct)).toBeUndefined();
    void create(WatchStockRequestSchema);
  });
});
