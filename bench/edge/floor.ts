/**
 * The floor of any gateway built as issue #7 asks (HTTP/JSON edge → grpc-js → service), with no
 * Meshwork code in it: scenario 7's "floor" path, to show what the transport alone allows.
 *
 *   floor.ts service          a plain grpc-js server answering GetProduct (protobuf-es binary codec)
 *   floor.ts gateway <port>   node:http: `POST /catalog.v1.CatalogService/GetProduct` (JSON body)
 *                             and `GET /v1/products/{id}` → one plain grpc-js client → the answer
 *                             as proto JSON
 *
 * Nothing else: no routing table, auth, limits, deadlines, policies, discovery, telemetry or error
 * mapping — an upper bound on throughput and a lower bound on latency for every gateway whose
 * edge → service leg is grpc-js, Meshwork's included. Prints `ready <port>` once listening.
 */
import { create, fromBinary, fromJson, toBinary, toJsonString } from "@bufbuild/protobuf";
import { Client, credentials, Metadata, Server, ServerCredentials, type sendUnaryData, type ServerUnaryCall } from "@grpc/grpc-js";
import * as http from "node:http";
import type { AddressInfo } from "node:net";
import { GetProductRequestSchema, GetProductResponseSchema, type GetProductRequest, type GetProductResponse } from "../../gen/catalog/v1/catalog_pb.js";
import { BENCH_PRODUCT } from "./product.js";

const PATH = "/catalog.v1.CatalogService/GetProduct";
const REST_PREFIX = "/v1/products/";

const encodeRequest = (m: GetProductRequest) => Buffer.from(toBinary(GetProductRequestSchema, m));
const decodeRequest = (b: Buffer) => fromBinary(GetProductRequestSchema, b);
const encodeResponse = (m: GetProductResponse) => Buffer.from(toBinary(GetProductResponseSchema, m));
const decodeResponse = (b: Buffer) => fromBinary(GetProductResponseSchema, b);

function service(): void {
  const server = new Server();
  server.register(
    PATH,
    (call: ServerUnaryCall<GetProductRequest, GetProductResponse>, cb: sendUnaryData<GetProductResponse>) =>
      cb(null, create(GetProductResponseSchema, { product: { id: call.request.id, ...BENCH_PRODUCT } })),
    encodeResponse,
    decodeRequest,
    "unary",
  );
  server.bindAsync("127.0.0.1:0", ServerCredentials.createInsecure(), (err, port) => {
    if (err) throw err;
    process.stdout.write(`ready ${port}\n`);
  });
}

function gateway(backendPort: string): void {
  const client = new Client(`127.0.0.1:${backendPort}`, credentials.createInsecure());
  const forward = (req: GetProductRequest, res: http.ServerResponse) =>
    client.makeUnaryRequest(PATH, encodeRequest, decodeResponse, req, new Metadata(), {}, (err, answer) => {
      if (err || !answer) {
        res.writeHead(502).end();
        return;
      }
      const body = toJsonString(GetProductResponseSchema, answer);
      res.writeHead(200, { "Content-Type": "application/json", "Content-Length": Buffer.byteLength(body) }).end(body);
    });
  const server = http.createServer((req, res) => {
    if (req.method === "GET" && req.url?.startsWith(REST_PREFIX)) {
      req.resume();
      forward(create(GetProductRequestSchema, { id: decodeURIComponent(req.url.slice(REST_PREFIX.length)) }), res);
      return;
    }
    if (req.method !== "POST" || req.url !== PATH) {
      res.writeHead(404).end();
      return;
    }
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", () => {
      let message: GetProductRequest;
      try {
        message = fromJson(GetProductRequestSchema, JSON.parse(Buffer.concat(chunks).toString("utf8")));
      } catch {
        res.writeHead(400).end();
        return;
      }
      forward(message, res);
    });
  });
  server.listen(0, "127.0.0.1", () => process.stdout.write(`ready ${(server.address() as AddressInfo).port}\n`));
}

const [mode, arg] = process.argv.slice(2);
process.on("SIGTERM", () => process.exit(0));
// A clean exit on SIGINT lets `node --cpu-prof` write its profile.
process.on("SIGINT", () => process.exit(0));
if (mode === "service") service();
else gateway(arg);
