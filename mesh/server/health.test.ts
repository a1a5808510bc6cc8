import { create } from "@bufbuild/protobuf";
import { Code } from "@connectrpc/connect";
import { CatalogService } from "../../gen/catalog/v1/catalog_pb.js";
import {
  Health,
  HealthCheckRequestSchema,
  HealthListRequestSchema,
  type HealthCheckResponse,
  type HealthListResponse,
} from "../../gen/grpc/health/v1/health_pb.js";
import { InventoryService } from "../../gen/inventory/v1/inventory_pb.js";
import { serverStreamCall, unaryCall } from "../grpc/index.js";
import { waitFor } from "../infra/index.js";
import { HealthState, service, ServingStatus, type DrainStep } from "./index.js";
import { method, TestResources } from "./test-support.js";

const res = new TestResources();
afterEach(() => res.closeAll());

const CATALOG = "catalog.v1.CatalogService";
const check = (client: ReturnType<TestResources["client"]>, name: string) =>
  unaryCall<HealthCheckResponse>(client, method(Health, "Check"), create(HealthCheckRequestSchema, { service: name })).then((r) => r.message.status);

describe("HealthState", () => {
  it("gives a slow watcher the latest status, not a backlog", async () => {
    const state = new HealthState(["a"]);
    const ctl = new AbortController();
    const w = state.watch("a", ctl.signal);
    expect((await w.next()).value).toBe(ServingStatus.NOT_SERVING);
    state.setStatus("a", ServingStatus.SERVING);
    state.setStatus("a", ServingStatus.NOT_SERVING);
    state.setStatus("a", ServingStatus.SERVING);
    expect((await w.next()).value).toBe(ServingStatus.SERVING);
    ctl.abort();
    expect((await w.next()).done).toBe(true);
  });

  it("ignores updates after shutdown", () => {
    const state = new HealthState(["a"]);
    state.setAll(ServingStatus.SERVING);
    state.shutdown();
    state.setStatus("a", ServingStatus.SERVING);
    state.setAll(ServingStatus.SERVING);
    expect(state.get("a")).toBe(ServingStatus.NOT_SERVING);
    expect(state.get("")).toBe(ServingStatus.NOT_SERVING);
  });
});

describe("grpc.health.v1.Health on a Meshwork server", () => {
  it("is NOT_SERVING until markReady(), then SERVING, for the server and each service", async () => {
    const server = await res.server({ services: [service(CatalogService, {})], autoReady: false });
    const client = res.client(server.port);
    expect(await check(client, "")).toBe(ServingStatus.NOT_SERVING);
    expect(await check(client, CATALOG)).toBe(ServingStatus.NOT_SERVING);
    server.markReady();
    expect(await check(client, "")).toBe(ServingStatus.SERVING);
    expect(await check(client, CATALOG)).toBe(ServingStatus.SERVING);
  });

  it("turns SERVING when listen resolves unless autoReady is false", async () => {
    const server = await res.server({ services: [service(CatalogService, {})] });
    expect(await check(res.client(server.port), "")).toBe(ServingStatus.SERVING);
  });

  it("answers NOT_FOUND for an unknown service", async () => {
    const server = await res.server({ services: [service(CatalogService, {})] });
    await expect(check(res.client(server.port), "no.such.Service")).rejects.toMatchObject({ error: { code: Code.NotFound } });
  });

  it("lists every known service with its status", async () => {
    const server = await res.server({ services: [service(CatalogService, {}), service(InventoryService, {})] });
    server.health.setStatus("inventory.v1.InventoryService", ServingStatus.NOT_SERVING);
    const { message } = await unaryCall<HealthListResponse>(res.client(server.port), method(Health, "List"), create(HealthListRequestSchema));
    const statuses = Object.fromEntries(Object.entries(message.statuses).map(([k, v]) => [k, v.status]));
    expect(statuses).toEqual({
      "": ServingStatus.SERVING,
      [CATALOG]: ServingStatus.SERVING,
      "inventory.v1.InventoryService": ServingStatus.NOT_SERVING,
    });
  });

  it("Watch sends the current status, then every change", async () => {
    const server = await res.server({ services: [service(CatalogService, {})] });
    const call = serverStreamCall<HealthCheckResponse>(res.client(server.port), method(Health, "Watch"), create(HealthCheckRequestSchema, { service: CATALOG }));
    res.add(() => call.cancel());
    const it = call.messages[Symbol.asyncIterator]();
    expect((await it.next()).value?.status).toBe(ServingStatus.SERVING);
    server.health.setStatus(CATALOG, ServingStatus.NOT_SERVING);
    expect((await it.next()).value?.status).toBe(ServingStatus.NOT_SERVING);
    server.health.setStatus(CATALOG, ServingStatus.SERVING);
    expect((await it.next()).value?.status).toBe(ServingStatus.SERVING);
  });

  it("Watch of an unknown service sends SERVICE_UNKNOWN and stays open until the service appears", async () => {
    const server = await res.server({ services: [service(CatalogService, {})] });
    const call = serverStreamCall<HealthCheckResponse>(res.client(server.port), method(Health, "Watch"), create(HealthCheckRequestSchema, { service: "late.v1.Service" }));
    res.add(() => call.cancel());
    const it = call.messages[Symbol.asyncIterator]();
    expect((await it.next()).value?.status).toBe(ServingStatus.SERVICE_UNKNOWN);
    server.health.setStatus("late.v1.Service", ServingStatus.SERVING);
    expect((await it.next()).value?.status).toBe(ServingStatus.SERVING);
  });

  it("during drain a watcher sees NOT_SERVING, then its stream ends before the server stops", async () => {
    const timeline: string[] = [];
    const server = await res.server({
      services: [service(CatalogService, {})],
      onDrainStep: (s: DrainStep) => timeline.push(`step:${s}`),
    });
    const call = serverStreamCall<HealthCheckResponse>(res.client(server.port), method(Health, "Watch"), create(HealthCheckRequestSchema, { service: "" }));
    const watched = (async () => {
      for await (const m of call.messages) timeline.push(`watch:${ServingStatus[m.status]}`);
      timeline.push("watch:end");
    })();
    await waitFor(() => timeline.includes("watch:SERVING"), { what: "the first Watch message" });
    await server.drain({
      // Converged once the watcher has seen NOT_SERVING: the server must still be accepting then.
      waitForConvergence: () => waitFor(() => timeline.includes("watch:NOT_SERVING"), { what: "NOT_SERVING on the watch" }).then(() => undefined),
    });
    await watched;
    expect(timeline.filter((t) => t.startsWith("watch:"))).toEqual(["watch:SERVING", "watch:NOT_SERVING", "watch:end"]);
    expect(timeline.indexOf("watch:NOT_SERVING")).toBeLessThan(timeline.indexOf("step:stop-accepting"));
    expect(timeline.indexOf("watch:end")).toBeLessThan(timeline.indexOf("step:stopped"));
    // The loop ended without throwing: the stream closed with OK, not forced.
    expect(timeline).not.toContain("step:force-shutdown");
  });
});
