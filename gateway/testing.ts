import { create, type DescService } from "@bufbuild/protobuf";
import { timestampFromMs } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError, type HandlerContext, type ServiceImpl } from "@connectrpc/connect";
import { CatalogService } from "../gen/catalog/v1/catalog_pb.js";
import { InventoryService } from "../gen/inventory/v1/inventory_pb.js";
import { ErrorDetailSchema } from "../gen/meshwork/v1/errors_pb.js";
import { NotificationService } from "../gen/notifications/v1/notifications_pb.js";
import { OrderService, OrderStatus } from "../gen/orders/v1/orders_pb.js";
import { PaymentService, PaymentStatus } from "../gen/payments/v1/payments_pb.js";
import { IDENTITY_KEY, identityMiddleware } from "../mesh/auth/index.js";
import { createMeshTransport, staticEndpoints, type MeshTransport } from "../mesh/client/index.js";
import { startTestGrpcServer } from "../mesh/testing/grpc-server.js";
import { mintDevToken } from "./dev-token.js";
import { build, type Gateway, type GatewayDeps } from "./server.js";

/** Test harness: fake shop backends on real grpc-js servers, and a gateway in front of them (tests only). */

export const TEST_JWT_SECRET = "test-jwt-secret-that-is-long-enough-0123456789";
export const TEST_IDENTITY_KEY = "test-mesh-identity-key-long-enough-0123456789";

/** One call a fake backend received. */
export interface SeenCall {
  path: string;
  header: Headers;
  subject: string | undefined;
}

const PRICE = { currencyCode: "EUR", amountMinor: 1999n };
let quietStreamsCancelled = 0;

let slowCallsCancelled = 0;

/** How many calls for product "slow" the fake backend saw cancelled by the caller (deadlines not counted). */
export function slowProductCallsCancelled(): number {
  return slowCallsCancelled;
}

/** How many "quiet" notification watches the fake backend saw cancelled. */
export function quietWatchesCancelled(): number {
  return quietStreamsCancelled;
}
const T0 = timestampFromMs(1_700_000_000_000);

function subjectOf(ctx: HandlerContext): string {
  return ctx.values.get(IDENTITY_KEY)?.subject ?? "anonymous";
}

function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    const t = setTimeout(resolve, ms);
    signal.addEventListener("abort", () => {
      clearTimeout(t);
      reject(new ConnectError("cancelled", Code.Canceled));
    });
  });
}

/**
 * Deterministic fake implementations: every response is a pure function of the request and the
 * caller's verified subject, so a test can compute what every protocol must return.
 * Special ids: product "missing" → NotFound with an ErrorDetail; product "slow" → sleeps 5 s;
 * stock "broken" → the watch fails with Aborted after one message; notifications of customer
 * "quiet" → the watch sends nothing until cancelled.
 */
export const FAKES: Array<[DescService, Partial<ServiceImpl<DescService>>]> = [
  [
    CatalogService,
    {
      listProducts: (req) => ({ products: [{ id: `p-${req.category || "all"}`, name: `page ${req.pageSize}`, price: PRICE, active: true }], nextPageToken: `${req.pageToken}+` }),
      async getProduct(req, ctx) {
        if (req.id === "missing") {
          const err = new ConnectError(`product ${req.id} not found`, Code.NotFound);
          err.details.push({ desc: ErrorDetailSchema, value: create(ErrorDetailSchema, { reason: "ERROR_REASON_PRODUCT_NOT_FOUND", domain: "catalog.v1", metadata: { id: req.id } }) });
          throw err;
        }
        if (req.id === "slow") {
          try {
            await sleep(5_000, ctx.signal);
          } catch (e) {
            // Cancelled by the caller well before the deadline (at the deadline the client cancels too).
            if (ConnectError.from(ctx.signal.reason).code === Code.Canceled && (ctx.timeoutMs() ?? Infinity) > 1_000) slowCallsCancelled++;
            throw e;
          }
        }
        return { product: { id: req.id, name: `Product ${req.id}`, price: PRICE, active: true } };
      },
      searchProducts: (req) => ({ products: [{ id: `q-${req.query}`, category: req.category }], nextPageToken: String(req.pageSize) }),
      listCategories: (req) => ({ categories: [{ id: "kitchen", displayName: `Kitchen ${req.pageSize}` }] }),
    } satisfies Partial<ServiceImpl<typeof CatalogService>> as never,
  ],
  [
    InventoryService,
    {
      getStock: (req) => ({ stock: { productId: req.productId, onHand: 5, reserved: 1, available: 4, updateTime: T0 } }),
      async *watchStock(req) {
        for (let i = 0; i < 3; i++) {
          yield { stock: { productId: req.productId, available: i } };
          if (req.productId === "broken") throw new ConnectError("stock feed broke", Code.Aborted);
        }
      },
      reserve: () => ({ reservation: { id: "must-never-be-reached" } }),
    } satisfies Partial<ServiceImpl<typeof InventoryService>> as never,
  ],
  [
    PaymentService,
    {
      getPayment: (req, ctx) => ({ payment: { id: req.paymentId, customerId: subjectOf(ctx), amount: PRICE, status: PaymentStatus.CAPTURED } }),
      authorize: () => ({ payment: { id: "must-never-be-reached" } }),
    } satisfies Partial<ServiceImpl<typeof PaymentService>> as never,
  ],
  [
    OrderService,
    {
      createOrder: (req, ctx) => ({
        order: {
          id: `o-${req.idempotencyKey}`,
          customerId: subjectOf(ctx),
          items: req.items.map((i) => ({ productId: i.productId, quantity: i.quantity, unitPrice: PRICE })),
          status: OrderStatus.CONFIRMED,
          createTime: T0,
        },
      }),
      getOrder: (req, ctx) => ({ order: { id: req.orderId, customerId: subjectOf(ctx), status: OrderStatus.CONFIRMED } }),
      listOrders: (req) => ({ orders: [{ id: "o1", customerId: req.customerId }], nextPageToken: String(req.pageSize) }),
      cancelOrder: (req) => ({ order: { id: req.orderId, status: OrderStatus.CANCELLED, cancelReason: req.reason } }),
      async *watchOrder(req) {
        yield { order: { id: req.orderId, status: OrderStatus.PENDING } };
        yield { order: { id: req.orderId, status: OrderStatus.CONFIRMED } };
      },
    } satisfies Partial<ServiceImpl<typeof OrderService>> as never,
  ],
  [
    NotificationService,
    {
      listNotifications: (req) => ({ notifications: [{ id: "n1", customerId: req.customerId, title: `page ${req.pageSize}` }] }),
      async *watchNotifications(req, ctx) {
        if (req.customerId === "quiet") {
          // Sends nothing until the caller goes away, like a real watch with no news.
          await new Promise((resolve) => ctx.signal.addEventListener("abort", resolve, { once: true }));
          quietStreamsCancelled++;
          return;
        }
        yield { notification: { id: "n2", customerId: req.customerId, title: "hello" } };
      },
    } satisfies Partial<ServiceImpl<typeof NotificationService>> as never,
  ],
];

/** The fake backends: one grpc-js server per service, verifying `meshwork-identity`. */
export interface FakeBackends {
  /** Address of a service's backend by type name. */
  addresses: Map<string, string>;
  /** Every call received, in order. */
  seen: SeenCall[];
  transportFor(typeName: string): MeshTransport;
  close(): void;
}

export async function startFakeBackends(): Promise<FakeBackends> {
  const seen: SeenCall[] = [];
  const addresses = new Map<string, string>();
  const servers: Array<{ close(): void }> = [];
  const transports: MeshTransport[] = [];
  const record = async (ctx: HandlerContext, next: () => Promise<void>) => {
    seen.push({ path: `/${ctx.service.typeName}/${ctx.method.name}`, header: ctx.requestHeader, subject: ctx.values.get(IDENTITY_KEY)?.subject });
    return next();
  };
  for (const [desc, impl] of FAKES) {
    const s = await startTestGrpcServer(desc, impl, { middleware: [identityMiddleware({ key: TEST_IDENTITY_KEY }), record] });
    servers.push(s);
    addresses.set(desc.typeName, s.address);
  }
  return {
    addresses,
    seen,
    transportFor(typeName) {
      const address = addresses.get(typeName);
      if (!address) throw new Error(`no fake backend for ${typeName}`);
      const t = createMeshTransport({ endpoints: staticEndpoints(address), serviceName: typeName });
      transports.push(t);
      return t;
    },
    close() {
      for (const t of transports) t.close();
      for (const s of servers) s.close();
    },
  };
}

/** A started gateway in front of `backends`. */
export interface TestGateway {
  gateway: Gateway;
  port: number;
  url: string;
  close(): Promise<void>;
}

/** Builds and starts a gateway on a free loopback port; `overrides` replace the test defaults. */
export async function startTestGateway(backends: FakeBackends, overrides: Partial<GatewayDeps> = {}): Promise<TestGateway> {
  const gateway = build({
    transportFor: (t) => backends.transportFor(t),
    jwt: { secret: TEST_JWT_SECRET },
    identityKey: TEST_IDENTITY_KEY,
    // Tests send hundreds of calls from one address: limiting is tested on its own.
    rateLimit: { rps: 0, burst: 1 },
    ...overrides,
  });
  const port = await gateway.listen(0, "127.0.0.1");
  return { gateway, port, url: `http://127.0.0.1:${port}`, close: () => gateway.close() };
}

/** A valid HS256 token for the test secret. */
export function testToken(subject: string, scopes: string[], extra: { ttlSec?: number } = {}): Promise<string> {
  return mintDevToken({ secret: TEST_JWT_SECRET, subject, scopes, ttlSec: extra.ttlSec });
}
