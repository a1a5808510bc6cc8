/**
 * The peer framework's chain for the edge comparison (issue #10): a moleculer-web API gateway →
 * a Moleculer "catalog" service over Moleculer's TCP transporter, as two processes.
 *
 *   servers.ts service <servicePort> <gatewayPort>            the catalog node (answers getProduct)
 *   servers.ts gateway <servicePort> <gatewayPort> <httpPort>  the moleculer-web node (HTTP/1.1)
 *
 * The TCP transporter uses static addresses (no UDP discovery, which would see other machines'
 * nodes and other helpers' runs) and its own namespace. Routes mirror the Meshwork gateway:
 * `POST /catalog.v1.CatalogService/GetProduct` with a JSON body, and `GET /v1/products/:id`;
 * the answer is the same JSON as the catalog's GetProduct through the Meshwork gateway
 * (bench/edge/servers.ts answers the same product). Moleculer runs as it would for speed:
 * its logger at warn (no per-request log lines), no metrics, no tracing. Prints `ready` once the
 * gateway sees the service.
 */
import { ServiceBroker } from "moleculer";
import ApiGateway from "moleculer-web";

const NAMESPACE = "meshwork-bench";
const [mode, servicePort, gatewayPort, httpPort] = process.argv.slice(2);

function broker(nodeID: string): ServiceBroker {
  return new ServiceBroker({
    namespace: NAMESPACE,
    nodeID,
    transporter: {
      type: "TCP",
      options: { udpDiscovery: false, urls: [`127.0.0.1:${servicePort}/mol-catalog`, `127.0.0.1:${gatewayPort}/mol-gateway`] },
    },
    logger: { type: "Console", options: { level: "warn" } },
    metrics: false,
    tracing: false,
  });
}

async function service(): Promise<void> {
  const b = broker("mol-catalog");
  b.createService({
    name: "catalog",
    actions: {
      // The catalog's GetProduct answer in proto JSON (int64 as a string), as the Meshwork path sends it.
      getProduct: {
        params: { id: { type: "string", min: 1 } },
        handler(ctx: { params: { id: string } }) {
          return { product: { id: ctx.params.id, name: "Bench product", price: { currencyCode: "EUR", amountMinor: "1999" }, active: true } };
        },
      },
    },
  });
  await b.start();
  process.stdout.write("ready\n");
}

async function gateway(): Promise<void> {
  const b = broker("mol-gateway");
  b.createService({
    name: "api",
    mixins: [ApiGateway],
    settings: {
      port: Number(httpPort),
      ip: "127.0.0.1",
      logRequest: null,
      logResponse: null,
      routes: [
        {
          path: "/",
          mappingPolicy: "restrict",
          bodyParsers: { json: true },
          aliases: {
            "POST /catalog.v1.CatalogService/GetProduct": "catalog.getProduct",
            "GET /v1/products/:id": "catalog.getProduct",
          },
        },
      ],
    },
  });
  await b.start();
  await b.waitForServices(["catalog"], 30_000);
  process.stdout.write(`ready ${httpPort}\n`);
}

process.on("SIGTERM", () => process.exit(0));
(mode === "service" ? service() : gateway()).catch((e: unknown) => {
  process.stderr.write(`${(e as Error).stack}\n`);
  process.exit(1);
});
