import type { DescService } from "@bufbuild/protobuf";
import type { ServiceImpl } from "@connectrpc/connect";
import { Server, ServerCredentials } from "@grpc/grpc-js";
import { grpcImplementation, grpcServiceDefinition, type AdapterOptions } from "../grpc/index.js";

/** A bare grpc-js server on a free loopback port serving one service through the mesh adapter (tests only). */
export async function startTestGrpcServer<S extends DescService>(
  desc: S,
  impl: Partial<ServiceImpl<S>>,
  opts: AdapterOptions = {},
): Promise<{ server: Server; address: string; port: number; close(): void }> {
  const server = new Server();
  server.addService(grpcServiceDefinition(desc), grpcImplementation(desc, impl, opts));
  const port = await new Promise<number>((resolve, reject) =>
    server.bindAsync("127.0.0.1:0", ServerCredentials.createInsecure(), (err, p) => (err ? reject(err) : resolve(p))),
  );
  return { server, address: `127.0.0.1:${port}`, port, close: () => server.forceShutdown() };
}
