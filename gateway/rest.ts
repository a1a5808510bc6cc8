import { ScalarType, type DescField, type DescMessage, type JsonObject, type JsonValue } from "@bufbuild/protobuf";
import { Code, ConnectError } from "@connectrpc/connect";
import type { GatewayMethod } from "./methods.js";

/**
 * REST → request message, as JSON in the proto3 JSON mapping: path parameters, then the body
 * (per the route's `body`), then query parameters for the remaining fields. The result is parsed
 * by protobuf-es `fromJson` (fast path) or sent through connect-node as a Connect JSON body
 * (general path), so both paths validate it identically.
 */

// Well-known types whose JSON form is a single string, so one query value can carry them.
const STRING_WKT = new Set([
  "google.protobuf.Timestamp",
  "google.protobuf.Duration",
  "google.protobuf.FieldMask",
  "google.protobuf.StringValue",
  "google.protobuf.BytesValue",
  "google.protobuf.Int64Value",
  "google.protobuf.UInt64Value",
]);
const NUMBER_WKT = new Set(["google.protobuf.Int32Value", "google.protobuf.UInt32Value", "google.protobuf.FloatValue", "google.protobuf.DoubleValue"]);

const byName = new WeakMap<DescMessage, Map<string, DescField>>();

/** A message's fields by proto name and by JSON name (query keys may use either). */
function fieldsOf(message: DescMessage): Map<string, DescField> {
  let m = byName.get(message);
  if (!m) {
    m = new Map();
    for (const f of message.fields) {
      m.set(f.name, f);
      m.set(f.jsonName, f);
    }
    byName.set(message, m);
  }
  return m;
}

function invalid(msg: string): ConnectError {
  return new ConnectError(msg, Code.InvalidArgument);
}

function scalarValue(field: DescField, raw: string, key: string): JsonValue {
  const kind = field.fieldKind === "list" ? field.listKind : field.fieldKind;
  if (kind === "enum") return /^-?\d+$/.test(raw) ? Number(raw) : raw;
  if (kind === "message") {
    const typeName = field.message!.typeName;
    if (STRING_WKT.has(typeName)) return raw;
    if (NUMBER_WKT.has(typeName)) return raw;
    if (typeName === "google.protobuf.BoolValue") return boolValue(raw, key);
    throw invalid(`query parameter "${key}" names message field ${field.name}; set its fields with "${key}.<field>"`);
  }
  const scalar = field.scalar!;
  if (scalar === ScalarType.BOOL) return boolValue(raw, key);
  // Numbers stay strings: the proto3 JSON mapping accepts quoted numbers for every numeric type,
  // and fromJson reports a non-number with the field's name.
  return raw;
}

function boolValue(raw: string, key: string): boolean {
  if (raw === "true") return true;
  if (raw === "false") return false;
  throw invalid(`query parameter "${key}" must be true or false, got "${raw.slice(0, 64)}"`);
}

/**
 * Builds the request JSON for `route` from path parameter values (in template order), the raw
 * query string (without "?") and the parsed JSON body (undefined when the request had none).
 * Throws InvalidArgument for unknown or repeated query keys, a query key that names a field bound
 * by the path or body, a body on a route without one, or a body that is not a JSON object.
 */
export function restRequestJson(route: GatewayMethod, params: string[], query: string, body: JsonValue | undefined): JsonObject {
  const rest = route.rest!;
  const input = route.method.input;
  let json: JsonObject;
  const bound = new Set<DescField>(rest.pathFields);
  if (rest.body === "*") {
    if (body === undefined || body === null) json = {};
    else if (typeof body === "object" && !Array.isArray(body)) json = { ...body };
    else throw invalid(`the body of ${rest.verb} ${rest.template} must be a JSON object`);
    for (const f of input.fields) bound.add(f);
  } else if (rest.bodyField) {
    json = {};
    if (body !== undefined) json[rest.bodyField.jsonName] = body;
    bound.add(rest.bodyField);
  } else {
    if (body !== undefined) throw invalid(`${rest.verb} ${rest.template} takes no request body`);
    json = {};
  }
  rest.pathFields.forEach((f, i) => {
    // The path wins over a body that names the same field under either spelling.
    delete json[f.name];
    json[f.jsonName] = scalarValue(f, params[i], f.name);
  });
  if (query) {
    const seen = new Set<string>();
    for (const [key, raw] of new URLSearchParams(query)) {
      setQueryValue(json, input, key, raw, bound, seen);
    }
  }
  return json;
}

function setQueryValue(json: JsonObject, input: DescMessage, key: string, raw: string, bound: Set<DescField>, seen: Set<string>): void {
  const parts = key.split(".");
  let message = input;
  let target = json;
  for (let i = 0; i < parts.length; i++) {
    const field = fieldsOf(message).get(parts[i]);
    if (!field) throw invalid(`unknown query parameter "${key.slice(0, 128)}" for ${input.typeName}`);
    if (i === 0 && bound.has(field)) throw invalid(`query parameter "${key}" sets a field that the path or body binds`);
    const last = i === parts.length - 1;
    if (!last) {
      if (field.fieldKind !== "message") throw invalid(`query parameter "${key}": ${field.name} has no sub-fields`);
      const child = target[field.jsonName];
      if (child !== undefined && (typeof child !== "object" || child === null || Array.isArray(child))) throw invalid(`query parameter "${key}" conflicts with another parameter`);
      target = (child as JsonObject | undefined) ?? (target[field.jsonName] = {});
      message = field.message;
      continue;
    }
    if (field.fieldKind === "map") throw invalid(`query parameter "${key}" names a map field; send it in a body`);
    if (field.fieldKind === "list") {
      if (field.listKind === "message" && !STRING_WKT.has(field.message.typeName) && !NUMBER_WKT.has(field.message.typeName)) {
        throw invalid(`query parameter "${key}" names a repeated message field; send it in a body`);
      }
      const list = (target[field.jsonName] as JsonValue[] | undefined) ?? (target[field.jsonName] = []);
      list.push(scalarValue(field, raw, key));
      return;
    }
    if (seen.has(key)) throw invalid(`query parameter "${key}" given more than once for a singular field`);
    seen.add(key);
    target[field.jsonName] = scalarValue(field, raw, key);
  }
}
