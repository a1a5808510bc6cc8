import type { DescService } from "@bufbuild/protobuf";
import { Client, credentials } from "@grpc/grpc-js";
import { createMeshServer, type MeshServer, type MeshServerOptions } from "./server.js";

/** Tracks servers and clients a test opened, and closes them all in `afterEach`. */
export class TestResources {
  private readonly closers: Array<() => void> = [];

  /** A Meshwork server listening on a free loopback port; force-shut after the test. */
  async server(opts: Partial<MeshServerOptions> & Pick<MeshServerOptions, "services">): Promise<MeshServer> {
    const server = createMeshServer({ serviceName: "test", ...opts });
    this.closers.push(() => server.forceShutdown());
    await server.listen(0, "127.0.0.1");
    return server;
  }

  /** A bare grpc-js channel to `127.0.0.1:port`. */
  client(port: number): Client {
    const client = new Client(`127.0.0.1:${port}`, credentials.createInsecure());
    this.closers.push(() => client.close());
    return client;
  }

  /** Registers any other cleanup. */
  add(close: () => void): void {
    this.closers.push(close);
  }

  closeAll(): void {
    while (this.closers.length) this.closers.pop()!();
  }
}

/** The method descriptor `name` (proto name, e.g. "Check") of `desc`. */
export function method(desc: DescService, name: string) {
  const m = desc.methods.find((x) => x.name === name);
  if (!m) throw new Error(`${desc.typeName} has no method ${name}`);
  return m;
}
