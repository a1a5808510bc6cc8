import { Code, ConnectError, createClient } from "@connectrpc/connect";
import { context, ROOT_CONTEXT, trace } from "@opentelemetry/api";
import { getEventListeners } from "node:events";
import { CatalogService } from "../../gen/catalog/v1/catalog_pb.js";
import { Health } from "../../gen/grpc/health/v1/health_pb.js";
import { InventoryService } from "../../gen/inventory/v1/inventory_pb.js";
import { createMeshTransport, staticEndpoints, type MeshTransport } from "../client/index.js";
import { waitFor } from "../infra/index.js";
import { createCallPolicy } from "../policy/index.js";
import { startTestGrpcServer } from "../testing/grpc-server.js";
import { startTelemetry } from "../telemetry/index.js";
import { currentDeadline, deadlineMiddleware, remainingMs, runWithDeadline, serverTimeouts } from "./index.js";

const cleanup: Array<() => void> = [];
afterEach(() => {
  while (cleanup.length) cleanup.pop()!();
});

const method = (name: string) => [...CatalogService.methods, ...InventoryService.methods, ...Health.methods].find((m) => m.name === name)!;

function transport(address: string, service: string): MeshTransport {
  const t = createMeshTransport({ endpoints: staticEndpoints(address), serviceName: service, policy: createCallPolicy({ service }) });
  cleanup.push(() => t.close());
  return t;
}

/** Simulated work that checks its signal every 5 ms, like a well-behaved handler. */
function worker() {
  const w = { work: 0, startedAt: 0, abortedAt: 0, exited: false, grantedMs: undefined as number | undefined };
  const run = async (signal: AbortSignal, grantedMs: number | undefined, id = "") => {
    // "warm" fails at once: the first call, and the first error, in a fresh jest worker pay ~100 ms
    // for connecting and lazy module loading, which would blur the timing being measured.
    if (id === "warm") throw new ConnectError("warm-up", Code.NotFound);
    w.startedAt = Date.now();
    w.grantedMs = grantedMs;
    signal.addEventListener("abort", () => (w.abortedAt = Date.now()), { once: true });
    while (!signal.aborted) {
      w.work++;
      await new Promise((r) => setTimeout(r, 5));
    }
    w.exited = true;
    throw new ConnectError("gave up", Code.Canceled);
  };
  return { w, run };
}

describe("server deadlines (timeoutFor)", () => {
  it("caps at the contract's timeout, fills in a missing deadline, and honours overrides", () => {
    const t = serverTimeouts();
    // GetProduct: timeout 2 s in catalog.proto.
    expect(t(method("GetProduct"), undefined)).toBe(2_000);
    expect(t(method("GetProduct"), 500)).toBe(500);
    expect(t(method("GetProduct"), 60_000)).toBe(2_000);
    // WatchStock: timeout {} = the server imposes none; only the caller's applies.
    expect(t(method("WatchStock"), undefined)).toBeUndefined();
    expect(t(method("WatchStock"), 700)).toBe(700);
    // grpc.health.v1 has no meshwork option: the runtime default.
    expect(t(method("Check"), undefined)).toBe(10_000);
    expect(serverTimeouts({ defaultMs: 3_000 })(method("Check"), undefined)).toBe(3_000);
    const o = serverTimeouts({ methods: { GetProduct: 100, GetStock: 0 } });
    expect(o(method("GetProduct"), 500)).toBe(100);
    expect(o(method("GetStock"), undefined)).toBeUndefined();
  });

  it("gives a handler the method's deadline when the caller sent none", async () => {
    let granted: number | undefined;
    const s = await startTestGrpcServer(
      CatalogService,
      {
        getProduct(_req, ctx) {
          granted = ctx.timeoutMs();
          return {};
        },
      },
      { timeoutFor: serverTimeouts() },
    );
    cleanup.push(s.close);
    // A bare transport: no client-side timeout at all.
    const t = createMeshTransport({ endpoints: staticEndpoints(s.address) });
    cleanup.push(() => t.close());
    await createClient(CatalogService, t).getProduct({ id: "p" });
    expect(granted).toBeGreaterThan(1_900);
    expect(granted).toBeLessThanOrEqual(2_000);
  });
  it("answers a call that arrives with its deadline already passed, even when the handler throws", async () => {
    let ran = 0;
    const s = await startTestGrpcServer(
      CatalogService,
      {
        getProduct() {
          ran++;
          throw new ConnectError("failed too", Code.Unavailable);
        },
      },
      // 0 ms left on arrival, as when a call waited in a busy server past its deadline.
      { timeoutFor: () => 0 },
    );
    cleanup.push(s.close);
    const t = createMeshTransport({ endpoints: staticEndpoints(s.address) });
    cleanup.push(() => t.close());
    // Before the adapter fix the handler's rejection went unhandled here (a process crash on Node 20).
    await expect(createClient(CatalogService, t).getProduct({ id: "p" })).rejects.toMatchObject({ code: Code.DeadlineExceeded });
    expect(ran).toBeLessThanOrEqual(1);
  });
});

describe("ambient deadline", () => {
  it("is readable by non-RPC work and nested scopes only shorten it", () => {
    expect(currentDeadline()).toBeUndefined();
    const d = Date.now() + 1_000;
    runWithDeadline(d, undefined, () => {
      expect(currentDeadline()).toBe(d);
      expect(remainingMs()).toBeLessThanOrEqual(1_000);
      runWithDeadline(d + 5_000, undefined, () => expect(currentDeadline()).toBe(d));
      runWithDeadline(d - 500, undefined, () => expect(currentDeadline()).toBe(d - 500));
    });
  });

  it("fails a call with less than the margin left without sending it", async () => {
    let calls = 0;
    const s = await startTestGrpcServer(InventoryService, {
      getStock() {
        calls++;
        return {};
      },
    });
    cleanup.push(s.close);
    const client = createClient(InventoryService, transport(s.address, "inventory"));
    await client.getStock({ productId: "p" }); // connects; proves the server answers
    await expect(runWithDeadline(Date.now() + 3, undefined, () => client.getStock({ productId: "p" }))).rejects.toMatchObject({
      code: Code.DeadlineExceeded,
    });
    const cancelled = new AbortController();
    cancelled.abort(new ConnectError("inbound cancelled", Code.Canceled));
    await expect(runWithDeadline(Date.now() + 1_000, cancelled.signal, () => client.getStock({ productId: "p" }))).rejects.toMatchObject({
      code: Code.Canceled,
    });
    expect(calls).toBe(1);
  });
});

describe("R10: a backend that sleeps past the deadline", () => {
  it("one hop: DeadlineExceeded at the deadline ± 100 ms and the handler is cancelled", async () => {
    const { w, run } = worker();
    const s = await startTestGrpcServer(InventoryService, { getStock: (req, ctx) => run(ctx.signal, ctx.timeoutMs(), req.productId) }, { timeoutFor: serverTimeouts() });
    cleanup.push(s.close);
    const client = createClient(InventoryService, transport(s.address, "inventory"));
    await expect(client.getStock({ productId: "warm" })).rejects.toMatchObject({ code: Code.NotFound });
    const started = Date.now();
    await expect(client.getStock({ productId: "p" }, { timeoutMs: 300 })).rejects.toMatchObject({ code: Code.DeadlineExceeded });
    expect(Math.abs(Date.now() - started - 300)).toBeLessThanOrEqual(100);
    await waitFor(() => w.exited, { timeoutMs: 2_000, what: "the handler to stop" });
    expect(Math.abs(w.abortedAt - started - 300)).toBeLessThanOrEqual(100);
    const done = w.work;
    expect(done).toBeGreaterThan(0);
    expect(w.work).toBe(done);
  });

  it("two hops: A's handler calls B with no timeout; B inherits A's deadline and is cancelled with it", async () => {
    const { w, run } = worker();
    const b = await startTestGrpcServer(InventoryService, { getStock: (req, ctx) => run(ctx.signal, ctx.timeoutMs(), req.productId) }, { timeoutFor: serverTimeouts() });
    cleanup.push(b.close);
    const toB = createClient(InventoryService, transport(b.address, "inventory"));
    let aError: Code | undefined;
    const a = await startTestGrpcServer(
      CatalogService,
      {
        async getProduct(req) {
          // No timeout, no signal: everything comes from the inbound call via AsyncLocalStorage.
          try {
            await toB.getStock({ productId: req.id });
          } catch (e) {
            aError = ConnectError.from(e).code;
            throw e;
          }
          return {};
        },
      },
      { middleware: [deadlineMiddleware()], timeoutFor: serverTimeouts() },
    );
    cleanup.push(a.close);
    const client = createClient(CatalogService, transport(a.address, "catalog"));
    await expect(client.getProduct({ id: "warm" })).rejects.toMatchObject({ code: Code.NotFound });
    aError = undefined;
    const started = Date.now();
    await expect(client.getProduct({ id: "p" }, { timeoutMs: 300 })).rejects.toMatchObject({ code: Code.DeadlineExceeded });
    expect(Math.abs(Date.now() - started - 300)).toBeLessThanOrEqual(100);
    await waitFor(() => w.exited && aError !== undefined, { timeoutMs: 2_000, what: "B's handler to stop" });
    // B was granted what was left of the 300 ms, not its own 2 s.
    expect(w.grantedMs).toBeLessThanOrEqual(300);
    expect(w.grantedMs).toBeGreaterThan(200);
    expect(Math.abs(w.abortedAt - started - 300)).toBeLessThanOrEqual(100);
    expect([Code.DeadlineExceeded, Code.Canceled]).toContain(aError);
  });

  it("two hops: the client cancelling cancels B's handler long before any deadline", async () => {
    const { w, run } = worker();
    const b = await startTestGrpcServer(InventoryService, { getStock: (req, ctx) => run(ctx.signal, ctx.timeoutMs(), req.productId) });
    cleanup.push(b.close);
    const toB = createClient(InventoryService, transport(b.address, "inventory"));
    const a = await startTestGrpcServer(
      CatalogService,
      {
        async getProduct(req) {
          await toB.getStock({ productId: req.id });
          return {};
        },
      },
      { middleware: [deadlineMiddleware()] },
    );
    cleanup.push(a.close);
    const client = createClient(CatalogService, transport(a.address, "catalog"));
    await expect(client.getProduct({ id: "warm" })).rejects.toMatchObject({ code: Code.NotFound });
    const ac = new AbortController();
    const call = client.getProduct({ id: "p" }, { timeoutMs: 5_000, signal: ac.signal });
    call.catch(() => undefined);
    await waitFor(() => w.work > 0, { timeoutMs: 2_000, what: "B to start" });
    const cancelledAt = Date.now();
    ac.abort();
    await expect(call).rejects.toMatchObject({ code: Code.Canceled });
    await waitFor(() => w.exited, { timeoutMs: 2_000, what: "B's handler to stop" });
    // Without propagation B would run until GetStock's own 2 s deadline; typically this takes ~15 ms.
    expect(w.abortedAt - cancelledAt).toBeLessThan(1_000);
  });
});

describe("many outgoing calls in one handler", () => {
  it("200 sequential calls leave no listener on the inbound signal and emit no MaxListenersExceededWarning", async () => {
    const warnings: string[] = [];
    const onWarning = (w: Error) => warnings.push(w.name);
    process.on("warning", onWarning);
    cleanup.push(() => process.off("warning", onWarning));
    const b = await startTestGrpcServer(InventoryService, { getStock: () => ({}) });
    cleanup.push(b.close);
    const toB = createClient(InventoryService, transport(b.address, "inventory"));
    const counts: number[] = [];
    const a = await startTestGrpcServer(
      CatalogService,
      {
        async getProduct(_req, ctx) {
          const inbound = ctx.signal;
          const own = new AbortController();
          for (let i = 0; i < 200; i++) {
            // No signal, one of the handler's own (combined with the inbound one), the inbound one itself.
            await toB.getStock({ productId: "p" }, i % 3 === 0 ? {} : { signal: i % 3 === 1 ? own.signal : inbound });
            counts.push(getEventListeners(inbound, "abort").length);
          }
          return {};
        },
      },
      { middleware: [deadlineMiddleware()] },
    );
    cleanup.push(a.close);
    await createClient(CatalogService, transport(a.address, "catalog")).getProduct({ id: "p" }, { timeoutMs: 30_000 });
    expect(counts).toHaveLength(200);
    expect(Math.max(...counts)).toBeLessThanOrEqual(1);
    // Warnings are emitted on the next tick.
    await new Promise((r) => setImmediate(r));
    expect(warnings).not.toContain("MaxListenersExceededWarning");
  });

  it("server-streaming calls that fail before their header leave no listener on the inbound signal", async () => {
    const warnings: string[] = [];
    const onWarning = (w: Error) => warnings.push(w.name);
    process.on("warning", onWarning);
    cleanup.push(() => process.off("warning", onWarning));
    const b = await startTestGrpcServer(InventoryService, {
      // eslint-disable-next-line require-yield
      async *watchStock() {
        throw new ConnectError("no such product", Code.NotFound);
      },
    });
    cleanup.push(b.close);
    const toB = createClient(InventoryService, transport(b.address, "inventory"));
    const counts: number[] = [];
    const codes = new Set<Code>();
    const a = await startTestGrpcServer(
      CatalogService,
      {
        async getProduct(_req, ctx) {
          const inbound = ctx.signal;
          for (let i = 0; i < 200; i++) {
            try {
              for await (const _ of toB.watchStock({ productId: "p" })) break;
            } catch (e) {
              codes.add(ConnectError.from(e).code);
            }
            counts.push(getEventListeners(inbound, "abort").length);
          }
          return {};
        },
      },
      { middleware: [deadlineMiddleware()] },
    );
    cleanup.push(a.close);
    await createClient(CatalogService, transport(a.address, "catalog")).getProduct({ id: "p" }, { timeoutMs: 30_000 });
    expect([...codes]).toEqual([Code.NotFound]);
    expect(Math.max(...counts)).toBeLessThanOrEqual(1);
    await new Promise((r) => setImmediate(r));
    expect(warnings).not.toContain("MaxListenersExceededWarning");
  });
});

describe("one storage for the deadline and the trace context", () => {
  it("a context switch keeps the deadline, a deadline scope keeps the active span, and deadlines outlive telemetry", async () => {
    const telemetry = startTelemetry({ serviceName: "deadline-test", instanceId: "deadline-test-1", env: {} });
    try {
      const deadline = Date.now() + 60_000;
      const span = trace.getTracer("test").startSpan("outer");
      await context.with(trace.setSpan(ROOT_CONTEXT, span), () =>
        runWithDeadline(deadline, undefined, async () => {
          await Promise.resolve();
          // The deadline scope did not replace the trace context...
          expect(trace.getActiveSpan()).toBe(span);
          // ...and a context built from ROOT_CONTEXT (an extracted trace context) keeps the deadline.
          await context.with(ROOT_CONTEXT, async () => {
            await Promise.resolve();
            expect(currentDeadline()).toBe(deadline);
            expect(trace.getActiveSpan()).toBeUndefined();
          });
        }),
      );
      span.end();
      expect(currentDeadline()).toBeUndefined();
    } finally {
      await telemetry.shutdown();
    }
    await runWithDeadline(Date.now() + 1_000, undefined, async () => {
      await Promise.resolve();
      expect(currentDeadline()).toBeDefined();
    });
  });
});
