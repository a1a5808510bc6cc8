/** Baseline: a plain grpc-js server built from the .proto file with @grpc/proto-loader. */
import { loadPackageDefinition, Server, ServerCredentials, type GrpcObject, type ServiceClientConstructor } from "@grpc/grpc-js";
import { loadSync } from "@grpc/proto-loader";
import { join } from "node:path";

const def = loadSync("catalog/v1/catalog.proto", { includeDirs: [join(__dirname, "../../proto")], longs: String, defaults: false });
const pkg = loadPackageDefinition(def) as GrpcObject;
const svc = ((pkg.catalog as GrpcObject).v1 as GrpcObject).CatalogService as ServiceClientConstructor;
const server = new Server();
server.addService(svc.service, {
  getProduct: (call: { request: { id: string } }, cb: (e: null, r: unknown) => void) => cb(null, { product: { id: call.request.id, name: "plain" } }),
});
server.bindAsync("127.0.0.1:0", ServerCredentials.createInsecure(), (err, port) => {
  if (err) throw err;
  process.stdout.write(`ready ${port}\n`);
});
process.on("SIGTERM", () => server.tryShutdown(() => process.exit(0)));
