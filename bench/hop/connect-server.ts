/** The "naive stack": connect-node serving the same method over gRPC on h2c (node:http2, no TLS). */
import { connectNodeAdapter } from "@connectrpc/connect-node";
import * as http2 from "node:http2";
import type { AddressInfo } from "node:net";
import { CatalogService } from "../../gen/catalog/v1/catalog_pb.js";

const server = http2.createServer(
  connectNodeAdapter({ routes: (router) => router.service(CatalogService, { getProduct: (req) => ({ product: { id: req.id, name: "connect" } }) }) }),
);
server.listen(0, "127.0.0.1", () => process.stdout.write(`ready ${(server.address() as AddressInfo).port}\n`));
process.on("SIGTERM", () => process.exit(0));
