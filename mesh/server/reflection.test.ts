import { create, createFileRegistry, fromBinary, type DescService, type Message, type MessageInitShape } from "@bufbuild/protobuf";
import { FileDescriptorProtoSchema, FileDescriptorSetSchema, timestampFromDate, type FileDescriptorProto } from "@bufbuild/protobuf/wkt";
import { Code } from "@connectrpc/connect";
import type { Client } from "@grpc/grpc-js";
import { execFile } from "node:child_process";
import { join } from "node:path";
import { promisify } from "node:util";
import { CatalogService } from "../../gen/catalog/v1/catalog_pb.js";
import * as v1 from "../../gen/grpc/reflection/v1/reflection_pb.js";
import * as v1alpha from "../../gen/grpc/reflection/v1alpha/reflection_pb.js";
import { InventoryService } from "../../gen/inventory/v1/inventory_pb.js";
import { grpcServiceDefinition } from "../grpc/index.js";
import { service } from "./index.js";
import { TestResources } from "./test-support.js";

const res = new TestResources();
afterEach(() => res.closeAll());

type RequestInit = MessageInitShape<typeof v1.ServerReflectionRequestSchema>;
type Response = v1.ServerReflectionResponse | v1alpha.ServerReflectionResponse;

/** Sends `requests` on one ServerReflectionInfo stream and collects the responses until it ends. */
function reflect(client: Client, desc: DescService, requests: RequestInit[]): Promise<Response[]> {
  const def = grpcServiceDefinition(desc).ServerReflectionInfo;
  const schema = desc === v1.ServerReflection ? v1.ServerReflectionRequestSchema : v1alpha.ServerReflectionRequestSchema;
  const call = client.makeBidiStreamRequest(def.path, def.requestSerialize, def.responseDeserialize);
  const out: Response[] = [];
  return new Promise((resolve, reject) => {
    call.on("data", (m: Response) => out.push(m));
    call.on("error", reject);
    call.on("end", () => resolve(out));
    for (const r of requests) call.write(create(schema, r as never) as Message);
    call.end();
  });
}

function fileNames(r: Response): string[] {
  if (r.messageResponse.case !== "fileDescriptorResponse") throw new Error(`expected files, got ${JSON.stringify(r.messageResponse.value)}`);
  return r.messageResponse.value.fileDescriptorProto.map((b) => fromBinary(FileDescriptorProtoSchema, b).name);
}

async function inventoryServer() {
  return res.server({
    services: [
      service(InventoryService, {
        getStock: (req) => ({ stock: { productId: req.productId, available: 3, updateTime: timestampFromDate(new Date("2024-05-01T10:00:00Z")) } }),
      }),
      service(CatalogService, {}),
    ],
  });
}

describe.each([
  ["v1", v1.ServerReflection],
  ["v1alpha", v1alpha.ServerReflection],
])("server reflection %s", (_version, desc) => {
  it("lists every registered service, health and reflection included", async () => {
    const server = await inventoryServer();
    const [r] = await reflect(res.client(server.port), desc, [{ host: "h", messageRequest: { case: "listServices", value: "*" } }]);
    expect(r.messageResponse.case).toBe("listServicesResponse");
    const names = r.messageResponse.case === "listServicesResponse" ? r.messageResponse.value.service.map((s) => s.name) : [];
    expect(names).toEqual([
      "catalog.v1.CatalogService",
      "grpc.health.v1.Health",
      "grpc.reflection.v1.ServerReflection",
      "grpc.reflection.v1alpha.ServerReflection",
      "inventory.v1.InventoryService",
    ]);
    expect(r.validHost).toBe("h");
    expect(r.originalRequest?.messageRequest).toEqual({ case: "listServices", value: "*" });
  });

  it("returns the file of a service with its transitive imports, which resolve into a complete registry", async () => {
    const server = await inventoryServer();
    const [r] = await reflect(res.client(server.port), desc, [{ messageRequest: { case: "fileContainingSymbol", value: "inventory.v1.InventoryService" } }]);
    const names = fileNames(r);
    expect(names[0]).toBe("inventory/v1/inventory.proto");
    expect([...names].sort()).toEqual([
      "google/protobuf/descriptor.proto",
      "google/protobuf/duration.proto",
      "google/protobuf/timestamp.proto",
      "inventory/v1/inventory.proto",
      "meshwork/v1/options.proto",
    ]);
    // Every import is present: the set builds a registry without missing files.
    const files = r.messageResponse.case === "fileDescriptorResponse" ? r.messageResponse.value.fileDescriptorProto : [];
    const protos = new Map(files.map((b) => fromBinary(FileDescriptorProtoSchema, b)).map((p) => [p.name, p]));
    const ordered: FileDescriptorProto[] = [];
    const visit = (name: string) => {
      const p = protos.get(name);
      if (!p) throw new Error(`${name} was not sent`);
      if (ordered.includes(p)) return;
      p.dependency.forEach(visit);
      ordered.push(p);
    };
    visit(names[0]);
    const registry = createFileRegistry(create(FileDescriptorSetSchema, { file: ordered }));
    const svc = registry.getService("inventory.v1.InventoryService");
    expect(svc?.methods.find((m) => m.name === "WatchStock")?.methodKind).toBe("server_streaming");
    // Custom method options survive (proto-loader based reflection drops them).
    expect(registry.getExtension("meshwork.v1.method")?.extendee.typeName).toBe("google.protobuf.MethodOptions");
  });

  it("finds methods, messages, fields, enums, enum values and nested types, with or without a leading dot", async () => {
    const server = await inventoryServer();
    const symbols = [
      ["inventory.v1.InventoryService.WatchStock", "inventory/v1/inventory.proto"],
      [".inventory.v1.Stock", "inventory/v1/inventory.proto"],
      ["inventory.v1.Stock.update_time", "inventory/v1/inventory.proto"],
      ["inventory.v1.ReservationStatus", "inventory/v1/inventory.proto"],
      ["inventory.v1.RESERVATION_STATUS_RESERVED", "inventory/v1/inventory.proto"],
      ["grpc.health.v1.HealthCheckResponse.ServingStatus", "grpc/health/v1/health.proto"],
      ["grpc.health.v1.HealthListResponse.StatusesEntry", "grpc/health/v1/health.proto"],
      ["google.protobuf.Timestamp", "google/protobuf/timestamp.proto"],
      ["meshwork.v1.method", "meshwork/v1/options.proto"],
    ];
    const answers = await reflect(
      res.client(server.port),
      desc,
      symbols.map(([s]) => ({ messageRequest: { case: "fileContainingSymbol", value: s } })),
    );
    expect(answers.map((a) => fileNames(a)[0])).toEqual(symbols.map(([, f]) => f));
  });

  it("answers file_by_filename and extension queries", async () => {
    const server = await inventoryServer();
    const [byName, byExt, numbers] = await reflect(res.client(server.port), desc, [
      { messageRequest: { case: "fileByFilename", value: "meshwork/v1/options.proto" } },
      { messageRequest: { case: "fileContainingExtension", value: { containingType: "google.protobuf.MethodOptions", extensionNumber: 51001 } } },
      { messageRequest: { case: "allExtensionNumbersOfType", value: "google.protobuf.MethodOptions" } },
    ]);
    expect(fileNames(byName)).toEqual(["meshwork/v1/options.proto", "google/protobuf/descriptor.proto", "google/protobuf/duration.proto"]);
    expect(fileNames(byExt)[0]).toBe("meshwork/v1/options.proto");
    expect(numbers.messageResponse).toEqual({
      case: "allExtensionNumbersResponse",
      value: expect.objectContaining({ baseTypeName: "google.protobuf.MethodOptions", extensionNumber: [51001] }),
    });
  });

  it("answers unknown names with NOT_FOUND error responses and keeps the stream open", async () => {
    const server = await inventoryServer();
    const answers = await reflect(res.client(server.port), desc, [
      { messageRequest: { case: "fileContainingSymbol", value: "no.such.Symbol" } },
      { messageRequest: { case: "fileByFilename", value: "no/such.proto" } },
      { messageRequest: { case: "fileContainingExtension", value: { containingType: "google.protobuf.MethodOptions", extensionNumber: 1 } } },
      { messageRequest: { case: "allExtensionNumbersOfType", value: "no.such.Message" } },
      {},
      { messageRequest: { case: "fileByFilename", value: "google/protobuf/timestamp.proto" } },
    ]);
    const codes = answers.map((a) => (a.messageResponse.case === "errorResponse" ? a.messageResponse.value.errorCode : a.messageResponse.case));
    expect(codes).toEqual([Code.NotFound, Code.NotFound, Code.NotFound, Code.NotFound, Code.InvalidArgument, "fileDescriptorResponse"]);
  });
});

describe("buf curl against a Meshwork server", () => {
  const buf = join(__dirname, "../../node_modules/.bin/buf");
  const run = (args: string[]) => promisify(execFile)(buf, ["curl", "--protocol", "grpc", "--http2-prior-knowledge", ...args], { timeout: 20_000 });

  it("lists methods and calls them through reflection (v1 and v1alpha)", async () => {
    const server = await inventoryServer();
    const base = `http://127.0.0.1:${server.port}`;
    // buf's default (v1, falling back to v1alpha), then each version explicitly.
    for (const protocol of [[], ["--reflect-protocol", "grpc-v1"], ["--reflect-protocol", "grpc-v1alpha"]]) {
      const { stdout } = await run([...protocol, "--list-methods", base]);
      const methods = stdout.trim().split("\n");
      expect(methods).toEqual(expect.arrayContaining(["inventory.v1.InventoryService/WatchStock", "catalog.v1.CatalogService/GetProduct", "grpc.health.v1.Health/Watch"]));
    }
    const health = await run(["-d", '{"service":""}', `${base}/grpc.health.v1.Health/Check`]);
    expect(JSON.parse(health.stdout)).toEqual({ status: "SERVING" });
    // A response with a well-known type (Timestamp) is rendered from the reflected descriptors.
    const stock = await run(["-d", '{"productId":"p1"}', `${base}/inventory.v1.InventoryService/GetStock`]);
    expect(JSON.parse(stock.stdout)).toEqual({ stock: { productId: "p1", available: 3, updateTime: "2024-05-01T10:00:00Z" } });
  });
});
