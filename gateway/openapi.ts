import { ScalarType, type DescEnum, type DescField, type DescMessage } from "@bufbuild/protobuf";
import { Code } from "@connectrpc/connect";
import { codeToString } from "@connectrpc/connect/protocol-connect";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { exposedMethods, type GatewayMethod } from "./methods.js";

/**
 * OpenAPI 3.1 for the gateway's REST routes, generated from the same descriptors the gateway
 * serves: paths from the `http` options, schemas from the message descriptors (proto3 JSON
 * mapping), security from the `auth` options. gateway/openapi.json is this output, checked in;
 * regenerate with `npx tsx gateway/openapi.ts --write` (or `npx tsx gateway/openapi.ts > gateway/openapi.json`).
 */

type Schema = Record<string, unknown>;

const ERROR_SCHEMA = "connect.Error";

const WKT: Record<string, Schema> = {
  "google.protobuf.Timestamp": { type: "string", format: "date-time" },
  "google.protobuf.Duration": { type: "string", pattern: "^-?[0-9]+(\\.[0-9]{1,9})?s$", description: "Seconds with an `s` suffix, e.g. \"1.5s\"." },
  "google.protobuf.FieldMask": { type: "string", description: "Comma-separated lowerCamelCase field paths." },
  "google.protobuf.Struct": { type: "object" },
  "google.protobuf.Value": {},
  "google.protobuf.ListValue": { type: "array" },
  "google.protobuf.Empty": { type: "object", additionalProperties: false },
  "google.protobuf.Any": { type: "object", properties: { "@type": { type: "string" } }, required: ["@type"] },
  "google.protobuf.StringValue": { type: ["string", "null"] },
  "google.protobuf.BoolValue": { type: ["boolean", "null"] },
  "google.protobuf.Int32Value": { type: ["integer", "null"], format: "int32" },
  "google.protobuf.UInt32Value": { type: ["integer", "null"], minimum: 0 },
  "google.protobuf.Int64Value": { type: ["string", "null"], format: "int64" },
  "google.protobuf.UInt64Value": { type: ["string", "null"], format: "uint64" },
  "google.protobuf.FloatValue": { type: ["number", "null"], format: "float" },
  "google.protobuf.DoubleValue": { type: ["number", "null"], format: "double" },
  "google.protobuf.BytesValue": { type: ["string", "null"], contentEncoding: "base64" },
};

function scalarSchema(t: ScalarType): Schema {
  switch (t) {
    case ScalarType.STRING:
      return { type: "string" };
    case ScalarType.BOOL:
      return { type: "boolean" };
    case ScalarType.INT32:
    case ScalarType.SINT32:
    case ScalarType.SFIXED32:
      return { type: "integer", format: "int32" };
    case ScalarType.UINT32:
    case ScalarType.FIXED32:
      return { type: "integer", minimum: 0, maximum: 4294967295 };
    // 64-bit integers are strings in the proto3 JSON mapping (JavaScript numbers lose precision).
    case ScalarType.INT64:
    case ScalarType.SINT64:
    case ScalarType.SFIXED64:
      return { type: "string", format: "int64" };
    case ScalarType.UINT64:
    case ScalarType.FIXED64:
      return { type: "string", format: "uint64" };
    case ScalarType.FLOAT:
      return { type: "number", format: "float" };
    case ScalarType.DOUBLE:
      return { type: "number", format: "double" };
    case ScalarType.BYTES:
      return { type: "string", contentEncoding: "base64" };
  }
}

class SchemaSet {
  readonly schemas: Record<string, Schema> = {};

  ref(typeName: string): Schema {
    return { $ref: `#/components/schemas/${typeName}` };
  }

  message(desc: DescMessage, omit: ReadonlySet<DescField> = new Set()): Schema {
    const wkt = WKT[desc.typeName];
    if (wkt) return wkt;
    if (omit.size === 0) {
      if (!(desc.typeName in this.schemas)) {
        this.schemas[desc.typeName] = {};
        this.schemas[desc.typeName] = this.objectOf(desc, omit);
      }
      return this.ref(desc.typeName);
    }
    return this.objectOf(desc, omit);
  }

  private objectOf(desc: DescMessage, omit: ReadonlySet<DescField>): Schema {
    const properties: Record<string, Schema> = {};
    for (const f of desc.fields) if (!omit.has(f)) properties[f.jsonName] = this.field(f);
    return { type: "object", properties, additionalProperties: false };
  }

  enumOf(desc: DescEnum): Schema {
    if (!(desc.typeName in this.schemas)) this.schemas[desc.typeName] = { type: "string", enum: desc.values.map((v) => v.name) };
    return this.ref(desc.typeName);
  }

  field(f: DescField): Schema {
    switch (f.fieldKind) {
      case "scalar":
        return scalarSchema(f.scalar);
      case "enum":
        return this.enumOf(f.enum);
      case "message":
        return this.message(f.message);
      case "list":
        return {
          type: "array",
          items: f.listKind === "scalar" ? scalarSchema(f.scalar) : f.listKind === "enum" ? this.enumOf(f.enum) : this.message(f.message),
        };
      case "map":
        return {
          type: "object",
          additionalProperties: f.mapKind === "scalar" ? scalarSchema(f.scalar) : f.mapKind === "enum" ? this.enumOf(f.enum) : this.message(f.message),
        };
    }
  }
}

/** Query parameters for `fields` (dotted names for sub-fields), as the gateway accepts them. */
function queryParameters(set: SchemaSet, fields: readonly DescField[], prefix: string, seen: Set<string>): Schema[] {
  const out: Schema[] = [];
  for (const f of fields) {
    const name = prefix + f.jsonName;
    if (f.fieldKind === "scalar" || f.fieldKind === "enum") {
      out.push({ name, in: "query", required: false, schema: set.field(f) });
    } else if (f.fieldKind === "list" && f.listKind !== "message") {
      out.push({ name, in: "query", required: false, schema: set.field(f), style: "form", explode: true });
    } else if (f.fieldKind === "message") {
      if (WKT[f.message.typeName]) out.push({ name, in: "query", required: false, schema: set.field(f) });
      else if (!seen.has(f.message.typeName)) {
        // Recursive messages stop at the first repetition: their deeper fields go in a body.
        const next = new Set(seen).add(f.message.typeName);
        out.push(...queryParameters(set, f.message.fields, `${name}.`, next));
      }
    }
  }
  return out;
}

function errorResponse(description: string): Schema {
  return { description, content: { "application/json": { schema: { $ref: `#/components/schemas/${ERROR_SCHEMA}` } } } };
}

/** The OpenAPI 3.1 document for `methods` (the exposed ones with an `http` option). */
export function openApiDocument(methods: readonly GatewayMethod[] = exposedMethods()): Record<string, unknown> {
  const set = new SchemaSet();
  const paths: Record<string, Record<string, unknown>> = {};
  for (const m of methods) {
    const r = m.rest;
    if (!r) continue;
    const parameters: Schema[] = r.pathFields.map((f) => ({ name: f.name, in: "path", required: true, schema: set.field(f) }));
    const bound = new Set<DescField>(r.pathFields);
    let requestBody: Schema | undefined;
    if (r.body === "*") {
      requestBody = { required: false, content: { "application/json": { schema: set.message(m.method.input, bound) } } };
      for (const f of m.method.input.fields) bound.add(f);
    } else if (r.bodyField) {
      requestBody = { required: false, content: { "application/json": { schema: set.field(r.bodyField) } } };
      bound.add(r.bodyField);
    }
    parameters.push(...queryParameters(set, m.method.input.fields.filter((f) => !bound.has(f)), "", new Set([m.method.input.typeName])));
    const output = set.message(m.method.output);
    const ok = m.streaming
      ? {
          description: `Server-Sent Events: each \`data:\` line is one ${m.method.output.typeName} as JSON; a failure ends the stream with \`event: error\` and a Connect error as data; comment lines are heartbeats.`,
          content: { "text/event-stream": { schema: { type: "string" }, "x-sse-data": output } },
        }
      : { description: m.method.output.typeName, content: { "application/json": { schema: output } } };
    const responses: Record<string, unknown> = { "200": ok };
    responses["400"] = errorResponse("invalid_argument: the request is malformed");
    if (!m.public) responses["401"] = errorResponse("unauthenticated: missing, expired or invalid bearer token");
    if (m.scopes.length > 0) responses["403"] = errorResponse(`permission_denied: the token lacks ${m.scopes.join(", ")}`);
    responses["429"] = { ...errorResponse("resource_exhausted: rate limit exceeded"), headers: { "Retry-After": { schema: { type: "integer" }, description: "Seconds to wait." } } };
    responses["504"] = errorResponse("deadline_exceeded");
    responses.default = errorResponse("Any other error, as a Connect error");
    const op: Record<string, unknown> = {
      operationId: `${m.service.name}_${m.method.name}`,
      tags: [m.service.typeName],
      description: `Calls ${m.service.typeName}.${m.method.name} (also served at POST ${m.rpcPath} over Connect, gRPC-Web and gRPC).`,
      parameters,
      ...(requestBody ? { requestBody } : {}),
      responses,
      security: m.public ? [] : [{ bearer: m.scopes }],
    };
    (paths[r.template] ??= {})[r.verb.toLowerCase()] = op;
  }
  const codes = Object.values(Code).filter((c): c is Code => typeof c === "number").map((c) => codeToString(c));
  set.schemas[ERROR_SCHEMA] = {
    type: "object",
    description: "A Connect error. Never carries a stack trace.",
    properties: {
      code: { type: "string", enum: codes },
      message: { type: "string" },
      details: {
        type: "array",
        items: { type: "object", properties: { type: { type: "string" }, value: { type: "string", contentEncoding: "base64" }, debug: {} }, required: ["type", "value"] },
      },
    },
    required: ["code"],
  };
  return {
    openapi: "3.1.0",
    info: {
      title: "Meshwork shop API",
      version: "v1",
      description:
        "REST routes of the Meshwork gateway, generated from the protobuf contracts (proto3 JSON mapping). Every response carries `X-Request-Id` (the client's if well-formed, else a new one). A `Connect-Timeout-Ms` request header sets the deadline, capped by the gateway. Errors are Connect error JSON.",
    },
    paths,
    components: {
      schemas: set.schemas,
      securitySchemes: { bearer: { type: "http", scheme: "bearer", bearerFormat: "JWT", description: "Scopes in the `scope` claim (space-separated) or `scp` (array)." } },
    },
  };
}

/** The checked-in document's text: stable formatting so `git diff` shows contract changes. */
export function openApiText(): string {
  return JSON.stringify(openApiDocument(), null, 2) + "\n";
}

if (require.main === module) {
  if (process.argv.includes("--write")) writeFileSync(join(__dirname, "openapi.json"), openApiText());
  else process.stdout.write(openApiText());
}
