import { fromJson } from "@bufbuild/protobuf";
import { Code, ConnectError } from "@connectrpc/connect";
import { exposedMethods, matchRest, type GatewayMethod } from "./methods.js";
import { restRequestJson } from "./rest.js";

const methods = exposedMethods();
const route = (name: string): GatewayMethod => methods.find((m) => m.method.name === name)!;

function codeOf(fn: () => unknown): Code | undefined {
  try {
    fn();
    return undefined;
  } catch (e) {
    return ConnectError.from(e).code;
  }
}

describe("REST route matching", () => {
  it("finds what trying every route's pattern finds (the prefix test only skips)", () => {
    const everyRoute = (verb: string, path: string) => {
      const hits = methods.filter((m) => m.rest?.match(path));
      const same = hits.filter((m) => m.rest!.verb === verb).sort((x, y) => y.rest!.specificity - x.rest!.specificity);
      if (same.length > 0) return { kind: "found", route: same[0].rpcPath, params: same[0].rest!.match(path) };
      if (hits.length > 0) return { kind: "method-not-allowed", allow: [...new Set(hits.map((m) => m.rest!.verb))].sort() };
      return { kind: "none" };
    };
    const paths = new Set<string>(["/", "", "/v1", "/v1/", "/v1/products/", "/v1/products//x", "/v1/orders/a%2Fb:cancel", "/v1/orders/o1:cancel:watch", "/V1/products"]);
    for (const m of methods) {
      if (!m.rest) continue;
      const t = m.rest.template;
      for (const v of ["p1", "o%201", "a:b", ""]) {
        const p = t.replace(/\{[^}]*\}/g, v);
        for (const q of [p, `${p}/`, `${p}x`, p.slice(0, -1), `/x${p}`]) paths.add(q);
      }
    }
    for (const path of paths) {
      for (const verb of ["GET", "POST", "DELETE", "PATCH"]) {
        const got = matchRest(methods, verb, path);
        const simple = got.kind === "found" ? { kind: "found", route: got.route.rpcPath, params: got.params } : got;
        expect([verb, path, simple]).toEqual([verb, path, everyRoute(verb, path)]);
      }
    }
  });

  it.each([
    ["GET", "/v1/products", "ListProducts", []],
    ["GET", "/v1/products/p-1", "GetProduct", ["p-1"]],
    ["GET", "/v1/products:search", "SearchProducts", []],
    ["GET", "/v1/orders/o%3A1", "GetOrder", ["o:1"]],
    ["POST", "/v1/orders/o1:cancel", "CancelOrder", ["o1"]],
    ["GET", "/v1/orders/o1:watch", "WatchOrder", ["o1"]],
    ["GET", "/v1/customers/c%2F1/orders", "ListOrders", ["c/1"]],
    ["GET", "/v1/customers/c1/notifications:watch", "WatchNotifications", ["c1"]],
  ])("%s %s → %s", (verb, path, name, params) => {
    const m = matchRest(methods, verb, path);
    expect(m).toMatchObject({ kind: "found", params });
    expect(m.kind === "found" && m.route.method.name).toBe(name);
  });

  it("tells a wrong verb from an unknown path", () => {
    expect(matchRest(methods, "DELETE", "/v1/orders/o1")).toEqual({ kind: "method-not-allowed", allow: ["GET"] });
    expect(matchRest(methods, "GET", "/v1/orders/o1:cancel")).toEqual({ kind: "method-not-allowed", allow: ["POST"] });
    expect(matchRest(methods, "GET", "/v1/orders/o1:explode")).toEqual({ kind: "none" });
    expect(matchRest(methods, "GET", "/v1/products/a/b")).toEqual({ kind: "none" });
    expect(matchRest(methods, "GET", "/v1/products/")).toEqual({ kind: "none" });
  });

  it("refuses a malformed percent-escape", () => {
    expect(() => matchRest(methods, "GET", "/v1/products/%E0%A4%A")).toThrow(URIError);
  });
});

describe("REST request mapping", () => {
  it("maps path, query (JSON or proto names, repeated) and body into the request JSON", () => {
    expect(restRequestJson(route("ListProducts"), [], "page_size=5&category=kitchen&pageToken=t", undefined)).toEqual({ pageSize: "5", category: "kitchen", pageToken: "t" });
    expect(restRequestJson(route("CancelOrder"), ["o1"], "", { reason: "late", orderId: "other" })).toEqual({ orderId: "o1", reason: "late" });
    const create = restRequestJson(route("CreateOrder"), [], "", { customerId: "c", items: [{ productId: "p", quantity: 1 }] });
    expect(fromJson(route("CreateOrder").method.input, create)).toMatchObject({ customerId: "c", items: [{ productId: "p", quantity: 1 }] });
  });

  it("produces JSON that protobuf-es accepts with the field types of the contract", () => {
    const json = restRequestJson(route("SearchProducts"), [], "query=blue+mug&pageSize=3", undefined);
    expect(fromJson(route("SearchProducts").method.input, json)).toMatchObject({ query: "blue mug", pageSize: 3 });
  });

  it.each([
    ["unknown parameter", "ListProducts", "nope=1", undefined],
    ["repeated singular parameter", "ListProducts", "category=a&category=b", undefined],
    ["sub-field of a scalar", "ListProducts", "category.x=1", undefined],
    ["a query parameter for a body route", "CreateOrder", "customerId=c", {}],
    ["a body on a GET route", "GetProduct", "", { id: "x" }],
    ["a non-object body", "CreateOrder", "", [1, 2]],
    ["a path-bound field in the query", "GetProduct", "id=other", undefined],
  ])("refuses %s", (_n, name, query, body) => {
    const params = route(name).rest!.pathFields.map(() => "x");
    expect(codeOf(() => restRequestJson(route(name), params, query, body as never))).toBe(Code.InvalidArgument);
  });
});
