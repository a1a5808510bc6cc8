import { Code, ConnectError, createClient } from "@connectrpc/connect";
import { CatalogService } from "../../gen/catalog/v1/catalog_pb.js";
import { createMeshTransport, staticEndpoints } from "../client/index.js";
import { waitFor } from "../infra/index.js";
import { startTestGrpcServer } from "../testing/grpc-server.js";
import { observeCall, type ServerMiddleware } from "./index.js";

const cleanup: Array<() => void> = [];
afterEach(() => {
  while (cleanup.length) cleanup.pop()!();
});

describe("server adapter deadlines", () => {
  it("aborts each call at its own deadline, earliest first, while other calls answer", async () => {
    const aborted: { id: string; code: Code | undefined }[] = [];
    // The server grants half of what the client asked for, so its own deadline comes first.
    const s = await startTestGrpcServer(
      CatalogService,
      {
        getProduct(req, ctx) {
          if (req.id === "quick") return { product: { id: "quick" } };
          return new Promise((_, reject) => {
            const onAbort = () => {
              aborted.push({ id: req.id, code: ConnectError.from(ctx.signal.reason).code });
              reject(ctx.signal.reason);
            };
            // A call can arrive already past its deadline when the machine stalls: count it too.
            if (ctx.signal.aborted) onAbort();
            else ctx.signal.addEventListener("abort", onAbort);
          });
        },
      },
      { timeoutFor: (_m, requested) => (requested === undefined ? undefined : requested / 2) },
    );
    cleanup.push(s.close);
    const t = createMeshTransport({ endpoints: staticEndpoints(s.address) });
    cleanup.push(() => t.close());
    const client = createClient(CatalogService, t);
    // Deadlines added out of order: the heap must fire them by time, not by arrival. 250 ms apart
    // on the server (half of these): a loaded CI machine stalls for ~100 ms at times.
    const slow = ["1500", "500", "1000"].map((id) => client.getProduct({ id }, { timeoutMs: Number(id) }).catch((e: unknown) => ConnectError.from(e).code));
    const quick = await client.getProduct({ id: "quick" }, { timeoutMs: 5_000 });
    expect(quick.product?.id).toBe("quick");
    expect(await Promise.all(slow)).toEqual([Code.DeadlineExceeded, Code.DeadlineExceeded, Code.DeadlineExceeded]);
    await waitFor(() => aborted.length === 3 || undefined, { what: "three server-side aborts", timeoutMs: 5_000 });
    expect(aborted).toEqual([
      { id: "500", code: Code.DeadlineExceeded },
      { id: "1000", code: Code.DeadlineExceeded },
      { id: "1500", code: Code.DeadlineExceeded },
    ]);
  });
});

describe("server adapter call observers", () => {
  /** Middleware that records what the adapter tells its per-call observer, by request id. */
  function recording() {
    const events: string[] = [];
    const middleware: ServerMiddleware = (ctx, next) => {
      const id = () => ctx.requestHeader.get("x-id") ?? "?";
      observeCall(ctx, {
        aborted: (reason) => events.push(`${id()} aborted ${Code[reason.code]}`),
        settled: (e, failed) => events.push(`${id()} settled ${failed ? Code[ConnectError.from(e).code] : "ok"}`),
      });
      return next();
    };
    return { events, middleware };
  }

  async function serve(middleware: ServerMiddleware[]) {
    const s = await startTestGrpcServer(
      CatalogService,
      {
        getProduct(req, ctx) {
          if (req.id === "sync") return { product: { id: "sync" } };
          if (req.id === "fail") throw new ConnectError("no such product", Code.NotFound);
          // Runs past its deadline: the call is answered at the abort, the chain settles later.
          return new Promise((resolve) => ctx.signal.addEventListener("abort", () => setImmediate(() => resolve({ product: { id: req.id } }))));
        },
      },
      // The server's deadline (100 ms) comes long before the client's, so the server aborts the call.
      { middleware, timeoutFor: (_m, requested) => Math.min(requested ?? Infinity, 100) },
    );
    cleanup.push(s.close);
    const t = createMeshTransport({ endpoints: staticEndpoints(s.address) });
    cleanup.push(() => t.close());
    return createClient(CatalogService, t);
  }

  it("answers a synchronous handler through pass-through middleware after the observers settled", async () => {
    const outer = recording();
    const inner = recording();
    const client = await serve([outer.middleware, inner.middleware]);
    const res = await client.getProduct({ id: "sync" }, { headers: { "x-id": "a" } });
    expect(res.product?.id).toBe("sync");
    // Innermost first, as `.then`s on next() would run; both before the answer reached the client.
    expect([...inner.events, ...outer.events]).toEqual(["a settled ok", "a settled ok"]);
    const failed = await client.getProduct({ id: "fail" }, { headers: { "x-id": "b" } }).catch((e: unknown) => ConnectError.from(e).code);
    expect(failed).toBe(Code.NotFound);
    expect(outer.events).toEqual(["a settled ok", "b settled NotFound"]);
  });

  it("tells an observer of the abort at the deadline, then of the chain settling", async () => {
    const rec = recording();
    const client = await serve([rec.middleware]);
    const code = await client.getProduct({ id: "slow" }, { headers: { "x-id": "c" }, timeoutMs: 5_000 }).catch((e: unknown) => ConnectError.from(e).code);
    expect(code).toBe(Code.DeadlineExceeded);
    await waitFor(() => rec.events.length === 2 || undefined, { what: "abort and settle observed", timeoutMs: 5_000 });
    expect(rec.events).toEqual(["c aborted DeadlineExceeded", "c settled ok"]);
  });
});
