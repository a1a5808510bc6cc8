/**
 * Gates on the shop contracts as the runtime and the gateway will see them:
 * the meshwork.v1.method options and idempotency levels read from the
 * generated descriptors, and a leading comment on every element of proto/.
 *
 * The route table below mirrors the contracts on purpose: changing a route,
 * scope, deadline or idempotency level is an API change and must show up in
 * this file's diff too.
 */
import { execFileSync } from "node:child_process";
import { readdirSync } from "node:fs";
import { join } from "node:path";
import { type DescFile, type DescMethod, type DescService, ScalarType, createRegistry, equals, fromBinary, getOption, hasOption } from "@bufbuild/protobuf";
import {
  type DescriptorProto,
  type EnumDescriptorProto,
  type FileDescriptorProto,
  FileDescriptorProtoSchema,
  FileDescriptorSetSchema,
  MethodOptions_IdempotencyLevel as Idempotency,
} from "@bufbuild/protobuf/wkt";
import { file_meshwork_v1_options, method as methodSettings, type MethodSettings } from "../../gen/meshwork/v1/options_pb.js";
import { CatalogService } from "../../gen/catalog/v1/catalog_pb.js";
import { InventoryService } from "../../gen/inventory/v1/inventory_pb.js";
import { PaymentService } from "../../gen/payments/v1/payments_pb.js";
import { OrderService } from "../../gen/orders/v1/orders_pb.js";
import { NotificationService } from "../../gen/notifications/v1/notifications_pb.js";

const ROOT = join(__dirname, "..", "..");
const GEN_DIR = join(ROOT, "gen");

/** Every file descriptor generated into gen/. */
function loadGeneratedFiles(): DescFile[] {
  const found: DescFile[] = [];
  const walk = (dir: string): void => {
    for (const entry of readdirSync(dir, { withFileTypes: true })) {
      const full = join(dir, entry.name);
      if (entry.isDirectory()) walk(full);
      else if (entry.name.endsWith("_pb.ts")) {
        // eslint-disable-next-line @typescript-eslint/no-require-imports
        const mod = require(full) as Record<string, unknown>;
        for (const v of Object.values(mod)) {
          if (typeof v === "object" && v !== null && (v as { kind?: unknown }).kind === "file") found.push(v as DescFile);
        }
      }
    }
  };
  walk(GEN_DIR);
  return found;
}

const generatedFiles = loadGeneratedFiles();
/** Services of the shop: everything generated from proto/, not the vendored grpc.* files. */
const shopServices: DescService[] = generatedFiles.filter((f) => !f.name.startsWith("grpc/")).flatMap((f) => f.services);
const shopMethods: DescMethod[] = shopServices.flatMap((s) => s.methods);

function settingsOf(m: DescMethod): MethodSettings {
  return getOption(m, methodSettings);
}

function timeoutMs(s: MethodSettings): number | undefined {
  return s.timeout ? Number(s.timeout.seconds) * 1000 + s.timeout.nanos / 1e6 : undefined;
}

const { NO_SIDE_EFFECTS, IDEMPOTENT, IDEMPOTENCY_UNKNOWN: DEFAULT } = Idempotency;

interface Expected {
  idempotency: Idempotency;
  timeoutMs: number;
  internal?: boolean;
  public?: boolean;
  scopes?: string[];
  http?: { method: string; path: string; body?: string };
}

/** The public surface of the shop, one row per method. */
const expected: Record<string, Expected> = {
  "catalog.v1.CatalogService.ListProducts": { idempotency: NO_SIDE_EFFECTS, timeoutMs: 2000, public: true, http: { method: "GET", path: "/v1/products" } },
  "catalog.v1.CatalogService.GetProduct": { idempotency: NO_SIDE_EFFECTS, timeoutMs: 2000, public: true, http: { method: "GET", path: "/v1/products/{id}" } },
  "catalog.v1.CatalogService.SearchProducts": { idempotency: NO_SIDE_EFFECTS, timeoutMs: 2000, public: true, http: { method: "GET", path: "/v1/products:search" } },
  "catalog.v1.CatalogService.ListCategories": { idempotency: NO_SIDE_EFFECTS, timeoutMs: 2000, public: true, http: { method: "GET", path: "/v1/categories" } },

  "inventory.v1.InventoryService.GetStock": { idempotency: NO_SIDE_EFFECTS, timeoutMs: 2000, public: true, http: { method: "GET", path: "/v1/stock/{product_id}" } },
  "inventory.v1.InventoryService.Reserve": { idempotency: IDEMPOTENT, timeoutMs: 5000, internal: true },
  "inventory.v1.InventoryService.CommitReservation": { idempotency: IDEMPOTENT, timeoutMs: 5000, internal: true },
  "inventory.v1.InventoryService.ReleaseReservation": { idempotency: IDEMPOTENT, timeoutMs: 5000, internal: true },
  "inventory.v1.InventoryService.WatchStock": { idempotency: NO_SIDE_EFFECTS, timeoutMs: 0, public: true, http: { method: "GET", path: "/v1/stock/{product_id}:watch" } },

  "payments.v1.PaymentService.Authorize": { idempotency: IDEMPOTENT, timeoutMs: 5000, internal: true },
  "payments.v1.PaymentService.Capture": { idempotency: IDEMPOTENT, timeoutMs: 5000, internal: true },
  "payments.v1.PaymentService.Void": { idempotency: IDEMPOTENT, timeoutMs: 5000, internal: true },
  "payments.v1.PaymentService.Refund": { idempotency: IDEMPOTENT, timeoutMs: 5000, internal: true },
  "payments.v1.PaymentService.GetPayment": { idempotency: NO_SIDE_EFFECTS, timeoutMs: 2000, scopes: ["payments:read"], http: { method: "GET", path: "/v1/payments/{payment_id}" } },

  "orders.v1.OrderService.CreateOrder": { idempotency: DEFAULT, timeoutMs: 10000, scopes: ["orders:write"], http: { method: "POST", path: "/v1/orders", body: "*" } },
  "orders.v1.OrderService.GetOrder": { idempotency: NO_SIDE_EFFECTS, timeoutMs: 2000, scopes: ["orders:read"], http: { method: "GET", path: "/v1/orders/{order_id}" } },
  "orders.v1.OrderService.ListOrders": { idempotency: NO_SIDE_EFFECTS, timeoutMs: 2000, scopes: ["orders:read"], http: { method: "GET", path: "/v1/customers/{customer_id}/orders" } },
  "orders.v1.OrderService.CancelOrder": { idempotency: IDEMPOTENT, timeoutMs: 5000, scopes: ["orders:write"], http: { method: "POST", path: "/v1/orders/{order_id}:cancel", body: "*" } },
  "orders.v1.OrderService.WatchOrder": { idempotency: NO_SIDE_EFFECTS, timeoutMs: 0, scopes: ["orders:read"], http: { method: "GET", path: "/v1/orders/{order_id}:watch" } },

  "notifications.v1.NotificationService.ListNotifications": { idempotency: NO_SIDE_EFFECTS, timeoutMs: 2000, scopes: ["notifications:read"], http: { method: "GET", path: "/v1/customers/{customer_id}/notifications" } },
  "notifications.v1.NotificationService.WatchNotifications": { idempotency: NO_SIDE_EFFECTS, timeoutMs: 0, scopes: ["notifications:read"], http: { method: "GET", path: "/v1/customers/{customer_id}/notifications:watch" } },
};

const fullName = (m: DescMethod): string => `${m.parent.typeName}.${m.name}`;

describe("meshwork.v1.method options", () => {
  test("the shop's services are the five expected ones", () => {
    expect(shopServices.map((s) => s.typeName).sort()).toEqual(
      [CatalogService, InventoryService, PaymentService, OrderService, NotificationService].map((s) => s.typeName).sort(),
    );
  });

  test("every method has a row in the route table, and every row a method", () => {
    expect(shopMethods.map(fullName).sort()).toEqual(Object.keys(expected).sort());
  });

  test.each(shopMethods.map((m) => [fullName(m), m] as const))("%s matches the route table", (name, m) => {
    const want = expected[name];
    if (!want) throw new Error(`${name} has no row in the route table`);
    const s = settingsOf(m);
    expect({
      idempotency: Idempotency[m.idempotency],
      timeoutMs: timeoutMs(s),
      internal: s.internal,
      public: s.auth?.public ?? false,
      scopes: s.auth?.scopes ?? [],
      http: s.http ? { method: s.http.method, path: s.http.path, body: s.http.body } : undefined,
    }).toEqual({
      idempotency: Idempotency[want.idempotency],
      timeoutMs: want.timeoutMs,
      internal: want.internal ?? false,
      public: want.public ?? false,
      scopes: want.scopes ?? [],
      http: want.http ? { body: "", ...want.http } : undefined,
    });
  });

  test("examples the runtime and gateway rely on", () => {
    const getProduct = settingsOf(CatalogService.method.getProduct);
    expect(getProduct.auth?.public).toBe(true);
    expect(getProduct.http).toMatchObject({ method: "GET", path: "/v1/products/{id}" });

    expect(settingsOf(OrderService.method.createOrder).auth?.scopes).toEqual(["orders:write"]);
    expect(InventoryService.method.reserve.idempotency).toBe(IDEMPOTENT);
    expect(OrderService.method.cancelOrder.idempotency).toBe(IDEMPOTENT);
    // CreateOrder is not idempotent by itself: it is retried only when the
    // request carries a non-empty idempotency_key.
    expect(OrderService.method.createOrder.idempotency).toBe(DEFAULT);
    for (const m of PaymentService.methods) {
      if (m.name === "GetPayment") continue;
      expect({ method: m.name, internal: settingsOf(m).internal, key: m.input.fields.some((f) => f.name === "idempotency_key") }).toEqual({
        method: m.name,
        internal: true,
        key: true,
      });
    }
  });
});

describe.each(shopMethods.map((m) => [fullName(m), m] as const))("%s", (_name, m) => {
  const s = settingsOf(m);

  test("sets meshwork.v1.method with a timeout", () => {
    expect(hasOption(m, methodSettings)).toBe(true);
    expect(s.timeout).toBeDefined();
    const ms = timeoutMs(s)!;
    if (m.methodKind === "unary") {
      expect(ms).toBeGreaterThan(0);
      expect(ms).toBeLessThanOrEqual(30_000);
    } else {
      // Streams run until the client cancels: zero means no server deadline.
      expect(ms).toBe(0);
    }
  });

  test("reads are side-effect free, streams are watches", () => {
    if (/^(Get|List|Search|Watch)[A-Z]/.test(m.name)) expect(m.idempotency).toBe(NO_SIDE_EFFECTS);
    if (m.methodKind !== "unary") {
      expect(m.methodKind).toBe("server_streaming");
      expect(m.name).toMatch(/^Watch/);
      expect(m.output.name).toBe(`${m.name}Response`);
    }
  });

  test("retry safety is declared or carried in the request", () => {
    // The runtime retries a method that is not declared idempotent only when
    // its request has a non-empty string field named exactly idempotency_key.
    const key = m.input.fields.find((f) => f.name === "idempotency_key");
    if (m.idempotency === DEFAULT) expect(key).toBeDefined();
    if (key) expect(key).toMatchObject({ fieldKind: "scalar", scalar: ScalarType.STRING });
  });

  test("is either internal or a complete gateway route", () => {
    if (s.internal) {
      expect(s.http).toBeUndefined();
      expect(s.auth).toBeUndefined();
      return;
    }
    expect(s.http).toBeDefined();
    const http = s.http!;
    // Exposed methods are public or name their scopes; no silent defaults.
    expect(s.auth).toBeDefined();
    expect(s.auth!.public !== s.auth!.scopes.length > 0).toBe(true);
    for (const scope of s.auth!.scopes) expect(scope).toMatch(/^[a-z]+:(read|write)$/);

    expect(["GET", "POST", "PUT", "PATCH", "DELETE"]).toContain(http.method);
    expect(http.path).toMatch(/^\/v1\/[a-z0-9_/{}-]+(:[a-z]+)?$/);
    if (http.method === "GET" || http.method === "DELETE") expect(http.body).toBe("");
    else if (http.body !== "*") expect(m.input.fields.map((f) => f.name)).toContain(http.body);
    if (m.methodKind === "server_streaming") expect(http.path).toMatch(/:watch$/);
    if (m.idempotency === NO_SIDE_EFFECTS) expect(http.method).toBe("GET");

    // Every {variable} binds a top-level string field of the request.
    for (const [, variable] of http.path.matchAll(/\{([^}]+)\}/g)) {
      const field = m.input.fields.find((f) => f.name === variable);
      expect({ variable, kind: field?.fieldKind, scalar: field?.scalar }).toEqual({ variable, kind: "scalar", scalar: ScalarType.STRING });
    }
  });
});

test("no two exposed methods share a route", () => {
  const routes = shopMethods
    .map(settingsOf)
    .filter((s) => !s.internal && s.http)
    .map((s) => `${s.http!.method} ${s.http!.path.replace(/\{[^}]+\}/g, "{}")}`);
  expect(routes.length).toBeGreaterThan(10);
  expect(new Set(routes).size).toBe(routes.length);
});

/**
 * The contracts as compiled by buf from proto/, with source info (comments),
 * which the generated code does not embed.
 */
function buildProtoModule(): FileDescriptorProto[] {
  const bytes = execFileSync(
    join(ROOT, "node_modules", ".bin", "buf"),
    ["build", "proto", "--exclude-imports", "--as-file-descriptor-set", "-o", "-#format=binpb"],
    { cwd: ROOT, maxBuffer: 64 * 1024 * 1024 },
  );
  return fromBinary(FileDescriptorSetSchema, new Uint8Array(bytes)).file;
}

/** Every commentable element of a file, with its source path and a readable name. */
function elementsOf(file: FileDescriptorProto): { path: number[]; name: string }[] {
  const out: { path: number[]; name: string }[] = [];
  const pkg = file.package;
  const enumElements = (e: EnumDescriptorProto, path: number[], scope: string): void => {
    out.push({ path, name: `enum ${scope}.${e.name}` });
    e.value.forEach((v, i) => out.push({ path: [...path, 2, i], name: `enum value ${scope}.${e.name}.${v.name}` }));
  };
  const messageElements = (m: DescriptorProto, path: number[], scope: string): void => {
    if (m.options?.mapEntry) return; // synthesized for map fields
    const name = `${scope}.${m.name}`;
    out.push({ path, name: `message ${name}` });
    m.field.forEach((f, i) => out.push({ path: [...path, 2, i], name: `field ${name}.${f.name}` }));
    m.oneofDecl.forEach((o, i) => out.push({ path: [...path, 8, i], name: `oneof ${name}.${o.name}` }));
    m.nestedType.forEach((n, i) => messageElements(n, [...path, 3, i], name));
    m.enumType.forEach((e, i) => enumElements(e, [...path, 4, i], name));
    m.extension.forEach((x, i) => out.push({ path: [...path, 6, i], name: `extension ${name}.${x.name}` }));
  };
  file.messageType.forEach((m, i) => messageElements(m, [4, i], pkg));
  file.enumType.forEach((e, i) => enumElements(e, [5, i], pkg));
  file.service.forEach((s, i) => {
    out.push({ path: [6, i], name: `service ${pkg}.${s.name}` });
    s.method.forEach((m, j) => out.push({ path: [6, i, 2, j], name: `rpc ${pkg}.${s.name}.${m.name}` }));
  });
  file.extension.forEach((x, i) => out.push({ path: [7, i], name: `extension ${pkg}.${x.name}` }));
  return out;
}

describe("proto/ as compiled by buf", () => {
  const files = buildProtoModule();

  test("every service, rpc, message, field, enum and enum value has a leading comment", () => {
    const missing: string[] = [];
    let checked = 0;
    for (const file of files) {
      const comments = new Map<string, string>();
      for (const loc of file.sourceCodeInfo?.location ?? []) {
        comments.set(loc.path.join("."), loc.leadingComments ?? "");
      }
      for (const el of elementsOf(file)) {
        checked++;
        if (!(comments.get(el.path.join("."))?.trim())) missing.push(`${file.name}: ${el.name}`);
      }
    }
    expect(missing).toEqual([]);
    // 377 elements when this was written; guards against checking nothing.
    expect(checked).toBeGreaterThanOrEqual(350);
  });

  test("gen/ is generated from the current proto/ (else run `npx buf generate`)", () => {
    // protoc-gen-es embeds the compiled descriptor without source info; apart
    // from that the two must be identical, options included.
    const optionsRegistry = createRegistry(file_meshwork_v1_options);
    const generated = new Map(generatedFiles.map((f) => [f.proto.name, f.proto]));
    expect([...generated.keys()].filter((n) => !n.startsWith("grpc/")).sort()).toEqual(files.map((f) => f.name).sort());
    const stale = files
      .filter((f) => {
        const gen = generated.get(f.name);
        const bare = { ...f, sourceCodeInfo: undefined };
        // Custom options are extensions: compare them too, not just the fields.
        return !gen || !equals(FileDescriptorProtoSchema, bare, gen, { registry: optionsRegistry, extensions: true, unknown: true });
      })
      .map((f) => f.name);
    expect(stale).toEqual([]);
  });
});
