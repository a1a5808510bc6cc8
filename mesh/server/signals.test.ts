import { create } from "@bufbuild/protobuf";
import { Code } from "@connectrpc/connect";
import { join } from "node:path";
import { CatalogService, GetProductRequestSchema } from "../../gen/catalog/v1/catalog_pb.js";
import { unaryCall } from "../grpc/index.js";
import { startProcess, tsxArgs, waitFor, type ManagedProcess } from "../infra/index.js";
import { method, TestResources } from "./test-support.js";

const res = new TestResources();
const children: ManagedProcess[] = [];
afterEach(async () => {
  res.closeAll();
  await Promise.all(children.splice(0).map((c) => c.kill()));
});

async function startFixture(): Promise<{ child: ManagedProcess; port: number }> {
  const child = startProcess(process.execPath, tsxArgs(join(__dirname, "fixtures/signal-server.ts")));
  children.push(child);
  const port = await waitFor(() => Number(/listening (\d+)/.exec(child.output())?.[1]) || undefined, { what: "the fixture to listen" });
  return { child, port };
}

const lines = (child: ManagedProcess) => child.output().trim().split("\n");

describe("runUntilSignal", () => {
  it("drains once on SIGTERM, runs afterDrain, and exits 0", async () => {
    const { child } = await startFixture();
    child.proc.kill("SIGTERM");
    expect(await child.exited).toEqual({ code: 0, signal: null });
    expect(lines(child).slice(1)).toEqual([
      "signal SIGTERM",
      "step not-serving",
      "step converge",
      "step stop-accepting",
      "step stopped",
      "after-drain",
    ]);
  });

  it("exits 1 at once on a second signal while a call holds the drain", async () => {
    const { child, port } = await startFixture();
    const hanging = unaryCall(res.client(port), method(CatalogService, "GetProduct"), create(GetProductRequestSchema, { id: "hang" }));
    const outcome = hanging.then(() => "succeeded", (e: unknown) => e);
    await waitFor(() => child.output().includes("hanging"), { what: "the hanging call to reach its handler" });
    child.proc.kill("SIGTERM");
    await waitFor(() => child.output().includes("step stop-accepting"), { what: "the drain to wait for the hanging call" });
    child.proc.kill("SIGINT");
    expect(await child.exited).toEqual({ code: 1, signal: null });
    expect(child.output()).not.toContain("after-drain");
    // Unavailable, not Cancelled: the caller may retry it on another replica.
    expect(await outcome).toMatchObject({ error: { code: Code.Unavailable } });
  });
});
