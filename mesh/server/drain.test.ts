import { create } from "@bufbuild/protobuf";
import { Code, ConnectError } from "@connectrpc/connect";
import { CatalogService, GetProductRequestSchema, type GetProductResponse } from "../../gen/catalog/v1/catalog_pb.js";
import { Health, HealthCheckRequestSchema } from "../../gen/grpc/health/v1/health_pb.js";
import { ServerReflection, ServerReflectionRequestSchema } from "../../gen/grpc/reflection/v1/reflection_pb.js";
import { grpcServiceDefinition, unaryCall } from "../grpc/index.js";
import { waitFor } from "../infra/index.js";
import { createMeshServer, service, type DrainStep } from "./index.js";
import { method, TestResources } from "./test-support.js";

const res = new TestResources();
afterEach(() => res.closeAll());

const getProduct = method(CatalogService, "GetProduct");
const check = method(Health, "Check");

/** A catalog whose GetProduct waits until the test releases it; records the handler's signal. */
function slowCatalog() {
  let release!: () => void;
  const released = new Promise<void>((resolve) => (release = resolve));
  const state = { entered: 0, signals: [] as AbortSignal[], release };
  const entry = service(CatalogService, {
    async getProduct(req, ctx) {
      state.entered++;
      state.signals.push(ctx.signal);
      await released;
      return { product: { id: req.id } };
    },
  });
  return { state, entry };
}

describe("MeshServer.drain", () => {
  it("runs NOT_SERVING → deregister → convergence → stop accepting, and lets an in-flight call finish", async () => {
    const steps: string[] = [];
    const { state, entry } = slowCatalog();
    const server = await res.server({ services: [entry], onDrainStep: (s: DrainStep) => steps.push(s) });
    const client = res.client(server.port);
    const inFlight = unaryCall<GetProductResponse>(client, getProduct, create(GetProductRequestSchema, { id: "slow" }));
    await waitFor(() => state.entered === 1, { what: "the slow call to start" });

    const drained = server.drain({
      deregister: async () => void steps.push("hook:deregister"),
      waitForConvergence: async () => void steps.push("hook:converge"),
    });
    await waitFor(() => steps.includes("stop-accepting"), { what: "stop-accepting" });

    // New connections are refused, and the existing one got GOAWAY: both fail fast as Unavailable.
    await expect(unaryCall(res.client(server.port), check, create(HealthCheckRequestSchema))).rejects.toMatchObject({ error: { code: Code.Unavailable } });
    await expect(unaryCall(client, check, create(HealthCheckRequestSchema))).rejects.toMatchObject({ error: { code: Code.Unavailable } });
    expect(steps).not.toContain("stopped");

    state.release();
    expect((await inFlight).message.product?.id).toBe("slow");
    await drained;
    expect(steps).toEqual(["not-serving", "deregister", "hook:deregister", "converge", "hook:converge", "stop-accepting", "stopped"]);
    expect(server.shutdownSignal.aborted).toBe(false);
  });

  it("force-closes a call that outlives the grace period; the handler's signal aborts with Unavailable", async () => {
    const steps: string[] = [];
    const { state, entry } = slowCatalog();
    const server = await res.server({ services: [entry], drainGraceMs: 200, convergenceDelayMs: 0, onDrainStep: (s: DrainStep) => steps.push(s) });
    const inFlight = unaryCall(res.client(server.port), getProduct, create(GetProductRequestSchema, { id: "stuck" }));
    const outcome = inFlight.then(() => "succeeded", (e: unknown) => e);
    await waitFor(() => state.entered === 1, { what: "the stuck call to start" });

    const started = Date.now();
    await server.drain();
    const elapsed = Date.now() - started;
    // Unavailable, not Cancelled: retryable on another replica.
    expect(await outcome).toMatchObject({ error: { code: Code.Unavailable } });
    expect(steps).toEqual(["not-serving", "converge", "stop-accepting", "force-shutdown", "stopped"]);
    expect(elapsed).toBeGreaterThanOrEqual(200);
    expect(elapsed).toBeLessThan(2_000);
    expect(server.shutdownSignal.aborted).toBe(true);
    expect(state.signals[0].aborted).toBe(true);
    expect(ConnectError.from(state.signals[0].reason).code).toBe(Code.Unavailable);
    state.release();
  });

  it("forceShutdown answers in-flight calls Unavailable and aborts their handlers' signals", async () => {
    const { state, entry } = slowCatalog();
    const server = await res.server({ services: [entry] });
    const client = res.client(server.port);
    const calls = ["a", "b", "c"].map((id) =>
      unaryCall(client, getProduct, create(GetProductRequestSchema, { id })).then(() => "succeeded", (e: unknown) => e),
    );
    await waitFor(() => state.entered === 3, { what: "three calls to start" });
    server.forceShutdown();
    expect(state.signals.every((s) => s.aborted)).toBe(true);
    for (const outcome of await Promise.all(calls)) expect(outcome).toMatchObject({ error: { code: Code.Unavailable } });
    state.release();
  });

  it("ends reflection streams a tool keeps open, so they do not hold the stop", async () => {
    const steps: string[] = [];
    const server = await res.server({ services: [service(CatalogService, {})], convergenceDelayMs: 0, onDrainStep: (s: DrainStep) => steps.push(s) });
    const def = grpcServiceDefinition(ServerReflection).ServerReflectionInfo;
    const call = res.client(server.port).makeBidiStreamRequest(def.path, def.requestSerialize, def.responseDeserialize);
    const replies: unknown[] = [];
    const ended = new Promise<void>((resolve, reject) => {
      call.on("data", (m) => replies.push(m));
      call.on("end", resolve);
      call.on("error", reject);
    });
    call.write(create(ServerReflectionRequestSchema, { messageRequest: { case: "listServices", value: "" } }));
    await waitFor(() => replies.length === 1, { what: "the list_services reply" });
    await server.drain();
    await ended;
    expect(steps).not.toContain("force-shutdown");
  });

  it("can listen again after a failed bind", async () => {
    const first = await res.server({ services: [service(CatalogService, {})] });
    const second = createMeshServer({ serviceName: "second", services: [service(CatalogService, {})] });
    res.add(() => second.forceShutdown());
    await expect(second.listen(first.port, "127.0.0.1")).rejects.toThrow();
    expect(await second.listen(0, "127.0.0.1")).toBeGreaterThan(0);
  });

  it("goes on when a hook fails or hangs, and runs only once however often it is called", async () => {
    const steps: string[] = [];
    const server = await res.server({ services: [service(CatalogService, {})], hookTimeoutMs: 100, onDrainStep: (s: DrainStep) => steps.push(s) });
    let deregisterCalls = 0;
    const hooks = {
      deregister: async () => {
        deregisterCalls++;
        throw new ConnectError("etcd unreachable", Code.Unavailable);
      },
      waitForConvergence: () => new Promise<void>(() => undefined),
    };
    const first = server.drain(hooks);
    const second = server.drain(hooks);
    expect(second).toBe(first);
    await first;
    expect(deregisterCalls).toBe(1);
    expect(steps).toEqual(["not-serving", "deregister", "deregister-failed", "converge", "converge-failed", "stop-accepting", "stopped"]);
  });
});
