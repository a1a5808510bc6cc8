import { Code, ConnectError, createClient, createHandlerContext } from "@connectrpc/connect";
import { InventoryService } from "../../gen/inventory/v1/inventory_pb.js";
import { createMeshTransport, staticEndpoints, type CallPolicy } from "../client/index.js";
import { waitFor } from "../infra/index.js";
import { startTestGrpcServer } from "../testing/grpc-server.js";
import { createCallPolicy, createConcurrencyLimit, parsePushback, type ConcurrencyLimitOptions } from "./index.js";

const cleanup: Array<() => void> = [];
afterEach(() => {
  while (cleanup.length) cleanup.pop()!();
});

/** A gate handlers wait on, opened by the test. */
function gate() {
  let open!: () => void;
  const opened = new Promise<void>((r) => (open = r));
  return { opened, open };
}

/** An inventory replica behind a concurrency limit; GetStock runs `work`. */
async function limitedReplica(opts: ConcurrencyLimitOptions, work: (productId: string, signal: AbortSignal) => Promise<void>) {
  const limit = createConcurrencyLimit({ service: "inventory", ...opts });
  const s = await startTestGrpcServer(
    InventoryService,
    {
      async getStock(req, ctx) {
        await work(req.productId, ctx.signal);
        return { stock: { productId: req.productId } };
      },
    },
    { middleware: [limit.middleware] },
  );
  cleanup.push(s.close);
  return { address: s.address, limit };
}

function clientFor(addresses: string[], policy?: CallPolicy) {
  const t = createMeshTransport({ endpoints: staticEndpoints(...addresses), serviceName: "inventory", policy });
  cleanup.push(() => t.close());
  return createClient(InventoryService, t);
}


describe("concurrency limit rules (fake clock)", () => {
  const getStock = InventoryService.method.getStock;
  const ctx = (timeoutMs?: number) =>
    createHandlerContext({ service: InventoryService, method: getStock, protocolName: "grpc", requestMethod: "POST", url: "/inventory.v1.InventoryService/GetStock", timeoutMs });
  /** A handler the test finishes by hand. */
  const handler = () => {
    let finish!: () => void;
    let started = false;
    const done = new Promise<void>((r) => (finish = r));
    return { next: () => ((started = true), done), finish, started: () => started };
  };
  const rejection = (p: Promise<void>) => p.then(() => undefined, (e: unknown) => e as ConnectError);

  afterEach(() => jest.useRealTimers());

  it("queues only while the wait is short and the deadline allows it, first in first out", async () => {
    jest.useFakeTimers({ now: 1_000_000 });
    const { middleware: mw, stats } = createConcurrencyLimit({ limit: 2, queue: 2 });
    // One call of 100 ms teaches the limiter the service time.
    const seed = handler();
    const seeded = mw(ctx(), seed.next);
    jest.advanceTimersByTime(100);
    seed.finish();
    await seeded;
    expect(stats().serviceTimeMs).toBe(100);

    const a = handler();
    const b = handler();
    const running = [mw(ctx(), a.next), mw(ctx(), b.next)];
    expect(stats().active).toBe(2);
    // Both slots free in 100 ms: more than half a call's time to wait → shed, pushback = the wait.
    const early = await rejection(mw(ctx(), handler().next));
    expect(early?.code).toBe(Code.ResourceExhausted);
    expect(parsePushback(early!.metadata.get("grpc-retry-pushback-ms"))).toBe(100);

    jest.advanceTimersByTime(60); // 40 ms to the first free slot: queue
    const c = handler();
    const queuedC = mw(ctx(), c.next);
    expect(stats().queued).toBe(1);
    // 40 ms wait + 100 ms of work does not fit in 50 ms: shed now, not time out later.
    const hurried = await rejection(mw(ctx(50), handler().next));
    expect(hurried?.code).toBe(Code.ResourceExhausted);
    const eCtx = ctx();
    const e = handler();
    const queuedE = rejection(mw(eCtx, e.next));
    expect(stats().queued).toBe(2);
    const full = await rejection(mw(ctx(), handler().next));
    expect(full?.code).toBe(Code.ResourceExhausted);
    expect(stats()).toMatchObject({ active: 2, queued: 2, rejected: 3 });

    a.finish();
    await running[0];
    await Promise.resolve();
    expect(c.started()).toBe(true); // the first queued call gets the slot
    expect(e.started()).toBe(false);
    expect(stats()).toMatchObject({ active: 2, queued: 1 });
    // A queued caller that gives up leaves the queue.
    eCtx.abort(new ConnectError("gone", Code.Canceled));
    expect((await queuedE)?.code).toBe(Code.Canceled);
    expect(stats().queued).toBe(0);
    b.finish();
    c.finish();
    await Promise.all([running[1], queuedC]);
    expect(stats()).toMatchObject({ active: 0, queued: 0, rejected: 3 });
  });
});

describe("concurrency limit (server bulkhead)", () => {
  it("5× the limit at once: limit run, queue waits, the rest is rejected at once with a pushback", async () => {
    const g = gate();
    const { address, limit } = await limitedReplica({ limit: 4, queue: 2 }, () => g.opened);
    const client = clientFor([address]); // no policy: exactly one attempt per call
    const answered: Array<ConnectError | "ok"> = [];
    const outcomes = Array.from({ length: 20 }, (_, i) =>
      client.getStock({ productId: `p${i}` }).then(
        () => void answered.push("ok"),
        (e: unknown) => void answered.push(ConnectError.from(e)),
      ),
    );
    // The rejections are all answered while every admitted call is still held at the gate.
    await waitFor(() => answered.length === 14, { timeoutMs: 5_000, what: "14 answers" });
    expect(limit.stats()).toMatchObject({ active: 4, queued: 2, rejected: 14 });
    for (const e of answered) {
      expect(e).toBeInstanceOf(ConnectError);
      expect((e as ConnectError).code).toBe(Code.ResourceExhausted);
      expect(parsePushback((e as ConnectError).metadata.get("grpc-retry-pushback-ms"))).toEqual(expect.any(Number));
    }
    g.open();
    await Promise.all(outcomes);
    expect(answered.filter((e) => e === "ok")).toHaveLength(6);
    expect(limit.stats()).toMatchObject({ active: 0, queued: 0 });
  });

  // Overload under time (5× the limit for seconds: admitted p99 ≤ 2× unloaded, shedding faster
  // than a handler run) is a timed measurement: fault battery scenario X1 (tests/faults/scenarios).

  it("a shed call is retried on another replica after the pushback", async () => {
    const g = gate();
    const busy = await limitedReplica({ limit: 1, queue: 0 }, (id) => (id === "hold" ? g.opened : Promise.resolve()));
    const idle = await limitedReplica({ limit: 1, queue: 0 }, () => Promise.resolve());
    // Another client holds the busy replica's only slot.
    const held = clientFor([busy.address]).getStock({ productId: "hold" });
    await waitFor(() => busy.limit.stats().active === 1, { timeoutMs: 2_000, what: "the busy replica to be full" });
    // Few calls: the balancer keeps preferring a replica that sheds (it answers fast), so most
    // first attempts land there and many calls would exceed the retry budget's 20 % + 10/s.
    const client = clientFor([busy.address, idle.address], createCallPolicy({ service: "inventory" }));
    for (let i = 0; i < 6; i++) await client.getStock({ productId: `p${i}` });
    expect(busy.limit.stats().rejected).toBeGreaterThan(0);
    g.open();
    await held;
  });
});
