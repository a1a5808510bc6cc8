import { readFileSync } from "node:fs";
import { join } from "node:path";
import { exposedMethods } from "./methods.js";
import { openApiDocument, openApiText } from "./openapi.js";

type Json = Record<string, unknown>;

describe("OpenAPI document", () => {
  const doc = openApiDocument() as Json & { paths: Record<string, Record<string, Json>>; components: { schemas: Json } };

  it("is checked in up to date (regenerate: npx tsx gateway/openapi.ts --write)", () => {
    expect(readFileSync(join(__dirname, "openapi.json"), "utf8")).toBe(openApiText());
  });

  it("has one operation per REST route, with the contract's path parameters and security", () => {
    const routes = exposedMethods().filter((m) => m.rest);
    expect(Object.values(doc.paths).flatMap((p) => Object.keys(p))).toHaveLength(routes.length);
    for (const m of routes) {
      const op = doc.paths[m.rest!.template]?.[m.rest!.verb.toLowerCase()] as { parameters: Json[]; security: unknown; requestBody?: unknown };
      expect(op).toBeDefined();
      const pathParams = op.parameters.filter((p) => p.in === "path").map((p) => p.name);
      expect(pathParams).toEqual([...m.rest!.template.matchAll(/\{([^}]+)\}/g)].map((x) => x[1]));
      expect(op.security).toEqual(m.public ? [] : [{ bearer: m.scopes }]);
      expect(op.requestBody !== undefined).toBe(m.rest!.body !== "");
    }
  });

  it("documents query parameters by their JSON names and SSE for streams", () => {
    const list = doc.paths["/v1/products"].get as { parameters: Json[] };
    expect(list.parameters.map((p) => p.name)).toEqual(["pageSize", "pageToken", "category"]);
    const watch = doc.paths["/v1/orders/{order_id}:watch"].get as { responses: { "200": { content: Json } } };
    expect(Object.keys(watch.responses["200"].content)).toEqual(["text/event-stream"]);
  });

  it("resolves every $ref to a schema", () => {
    const refs = JSON.stringify(doc).match(/"\$ref":"#\/components\/schemas\/[^"]+"/g) ?? [];
    expect(refs.length).toBeGreaterThan(0);
    for (const r of refs) {
      const name = r.slice('"$ref":"#/components/schemas/'.length, -1);
      expect(doc.components.schemas[name]).toBeDefined();
    }
  });

  it("maps 64-bit integers to strings and timestamps to date-time, as the proto3 JSON mapping does", () => {
    const money = doc.components.schemas["common.v1.Money"] as { properties: Record<string, Json> };
    expect(money.properties.amountMinor).toEqual({ type: "string", format: "int64" });
    const order = doc.components.schemas["orders.v1.Order"] as { properties: Record<string, Json> };
    expect(order.properties.createTime).toEqual({ type: "string", format: "date-time" });
    expect(doc.components.schemas["orders.v1.OrderStatus"]).toMatchObject({ type: "string", enum: expect.arrayContaining(["ORDER_STATUS_CONFIRMED"]) });
  });
});
