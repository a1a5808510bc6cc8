import { getOption, type DescField, type DescMethod, type DescService } from "@bufbuild/protobuf";
import { MethodOptions_IdempotencyLevel } from "@bufbuild/protobuf/wkt";
import { CatalogService } from "../gen/catalog/v1/catalog_pb.js";
import { InventoryService } from "../gen/inventory/v1/inventory_pb.js";
import { method as methodOption } from "../gen/meshwork/v1/options_pb.js";
import { NotificationService } from "../gen/notifications/v1/notifications_pb.js";
import { OrderService } from "../gen/orders/v1/orders_pb.js";
import { PaymentService } from "../gen/payments/v1/payments_pb.js";

/** The services the gateway fronts. Their internal methods are never exposed. */
export const GATEWAY_SERVICES: readonly DescService[] = [CatalogService, InventoryService, PaymentService, OrderService, NotificationService];

/** HTTP verbs a REST route may use (meshwork.v1.HttpRule). */
const VERBS = new Set(["GET", "POST", "PUT", "PATCH", "DELETE"]);

/** A REST route compiled from a method's `http` option. */
export interface RestRoute {
  /** Upper-case HTTP verb. */
  verb: string;
  /** The template as written in the contract, e.g. "/v1/orders/{order_id}:cancel". */
  template: string;
  /** "*", a top-level field name, or "" for no body. */
  body: string;
  /** Top-level request fields bound by the path, in template order. */
  pathFields: DescField[];
  /** The field the body maps to when `body` names one. */
  bodyField?: DescField;
  /** Literal characters in the template: more literal wins when two templates match. */
  specificity: number;
  /** The template's literal start (up to its first field): a path without it cannot match. */
  prefix: string;
  /** Path parameter values (percent-decoded) if `path` matches, else undefined. */
  match(path: string): string[] | undefined;
}

/** One method the gateway exposes, with everything the contract says about serving it. */
export interface GatewayMethod {
  method: DescMethod;
  service: DescService;
  /** Connect/gRPC path: "/package.Service/Method". */
  rpcPath: string;
  streaming: boolean;
  /** No token needed. */
  public: boolean;
  /** Scopes the caller's token must all carry. */
  scopes: string[];
  /** The contract's deadline in ms; undefined when absent or zero (no server-imposed deadline). */
  timeoutMs: number | undefined;
  /** NO_SIDE_EFFECTS: Connect GET allowed. */
  noSideEffects: boolean;
  rest?: RestRoute;
}

/**
 * The exposed methods of `services`, read from the generated descriptors: every unary or
 * server-streaming method whose meshwork.v1.method option is not `internal`. Throws on a contract
 * the gateway cannot serve (bad verb, a path field that does not exist), so a broken contract
 * fails at start, not on the first request.
 */
export function exposedMethods(services: readonly DescService[] = GATEWAY_SERVICES): GatewayMethod[] {
  const out: GatewayMethod[] = [];
  for (const service of services) {
    for (const method of service.methods) {
      const settings = getOption(method, methodOption);
      if (settings.internal) continue;
      if (method.methodKind !== "unary" && method.methodKind !== "server_streaming") continue;
      const t = settings.timeout;
      const timeoutMs = t ? Number(t.seconds) * 1000 + Math.floor(t.nanos / 1e6) : 0;
      out.push({
        method,
        service,
        rpcPath: `/${service.typeName}/${method.name}`,
        streaming: method.methodKind === "server_streaming",
        public: settings.auth?.public ?? false,
        scopes: settings.auth?.public ? [] : [...(settings.auth?.scopes ?? [])],
        timeoutMs: timeoutMs > 0 ? timeoutMs : undefined,
        noSideEffects: method.idempotency === MethodOptions_IdempotencyLevel.NO_SIDE_EFFECTS,
        rest: settings.http && settings.http.path ? compileRoute(method, settings.http.method, settings.http.path, settings.http.body) : undefined,
      });
    }
  }
  return out;
}

/** Compiles an HttpRule path template ("/v1/orders/{order_id}:cancel") into a matcher. */
export function compileRoute(method: DescMethod, verb: string, template: string, body: string): RestRoute {
  const where = `${method.parent.typeName}.${method.name}`;
  if (!VERBS.has(verb)) throw new Error(`${where}: http.method "${verb}" is not one of ${[...VERBS].join(", ")}`);
  if (!template.startsWith("/")) throw new Error(`${where}: http.path "${template}" must start with "/"`);
  if ((verb === "GET" || verb === "DELETE") && body !== "") throw new Error(`${where}: ${verb} routes take no body`);
  const pathFields: DescField[] = [];
  let literal = 0;
  // A field value is one path segment without ':' (a ':' starts the custom verb, as in
  // google.api.http); ids that contain ':' are sent percent-encoded (%3A).
  const source = template.replace(/\{([^}]*)\}|[^{]+/g, (part, name: string | undefined) => {
    if (name === undefined) {
      literal += part.length;
      return part.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
    }
    const field = method.input.fields.find((f) => f.name === name);
    if (!field || field.fieldKind !== "scalar") throw new Error(`${where}: path field "${name}" is not a top-level scalar field of ${method.input.typeName}`);
    pathFields.push(field);
    return "([^/:]+)";
  });
  let bodyField: DescField | undefined;
  if (body !== "" && body !== "*") {
    bodyField = method.input.fields.find((f) => f.name === body);
    if (!bodyField) throw new Error(`${where}: http.body "${body}" is not a field of ${method.input.typeName}`);
  }
  const re = new RegExp(`^${source}$`);
  return {
    verb,
    template,
    body,
    pathFields,
    bodyField,
    specificity: literal,
    prefix: template.split("{")[0],
    match(path) {
      const m = re.exec(path);
      if (!m) return undefined;
      const values: string[] = [];
      for (let i = 1; i < m.length; i++) values.push(decodeURIComponent(m[i]));
      return values;
    },
  };
}

/** Result of matching a request against the REST routes. */
export type RestMatch =
  | { kind: "found"; route: GatewayMethod; params: string[] }
  | { kind: "method-not-allowed"; allow: string[] }
  | { kind: "none" };

/** Matches (verb, path) against every route; throws URIError for a malformed percent-escape. */
export function matchRest(methods: readonly GatewayMethod[], verb: string, path: string): RestMatch {
  let best: { route: GatewayMethod; params: string[] } | undefined;
  let allow: Set<string> | undefined;
  for (const m of methods) {
    // The prefix test spares most routes their regular expression.
    if (!m.rest || !path.startsWith(m.rest.prefix)) continue;
    const params = m.rest.match(path);
    if (!params) continue;
    (allow ??= new Set()).add(m.rest.verb);
    if (m.rest.verb === verb && (!best || m.rest.specificity > best.route.rest!.specificity)) best = { route: m, params };
  }
  if (best) return { kind: "found", ...best };
  if (allow !== undefined) return { kind: "method-not-allowed", allow: [...allow].sort() };
  return { kind: "none" };
}
