import { Code, ConnectError, createClient } from "@connectrpc/connect";
import { CatalogService } from "../../gen/catalog/v1/catalog_pb.js";
import { createMeshTransport, staticEndpoints } from "../client/index.js";
import { waitFor } from "../infra/index.js";
import { startTestGrpcServer } from "../testing/grpc-server.js";

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
          return new Promise((_, reject) =>
            ctx.signal.addEventListener("abort", () => {
              aborted.push({ id: req.id, code: ConnectError.from(ctx.signal.reason).code });
              reject(ctx.signal.reason);
            }),
          );
        },
      },
      { timeoutFor: (_m, requested) => (requested === undefined ? undefined : requested / 2) },
    );
    cleanup.push(s.close);
    const t = createMeshTransport({ endpoints: staticEndpoints(s.address) });
    cleanup.push(() => t.close());
    const client = createClient(CatalogService, t);
    // Deadlines added out of order: the heap must fire them by time, not by arrival.
    const slow = ["300", "100", "200"].map((id) => client.getProduct({ id }, { timeoutMs: Number(id) }).catch((e: unknown) => ConnectError.from(e).code));
    const quick = await client.getProduct({ id: "quick" }, { timeoutMs: 5_000 });
    expect(quick.product?.id).toBe("quick");
    expect(await Promise.all(slow)).toEqual([Code.DeadlineExceeded, Code.DeadlineExceeded, Code.DeadlineExceeded]);
    await waitFor(() => aborted.length === 3 || undefined, { what: "three server-side aborts", timeoutMs: 5_000 });
    expect(aborted).toEqual([
      { id: "100", code: Code.DeadlineExceeded },
      { id: "200", code: Code.DeadlineExceeded },
      { id: "300", code: Code.DeadlineExceeded },
    ]);
  });
});
