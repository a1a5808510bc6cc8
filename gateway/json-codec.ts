import { create, fromJson, ScalarType, toJsonString, type DescField, type DescMessage, type JsonValue, type Message } from "@bufbuild/protobuf";
import { isScalarZeroValue } from "@bufbuild/protobuf/reflect";
import { FeatureSet_FieldPresence } from "@bufbuild/protobuf/wkt";

/**
 * Proto3 JSON of a response message, compiled once per message type. protobuf-es' toJsonString
 * wraps every message and field in reflection objects; for a catalog answer that was ~1.9 µs of
 * the gateway's ~40 µs per request. The compiled writer builds the very JSON value protobuf-es
 * builds (same keys, same order: fields by number; same omissions: implicit-presence zero values,
 * empty lists) and stringifies it the same way, so the text is identical. Anything outside the
 * common subset stays with protobuf-es: message types with maps, enums, oneofs, bytes,
 * well-known types or proto2 required fields use it for the whole message, and a value that does
 * not fit its field makes that call fall back, so protobuf-es' exact output or error is kept.
 */
export function messageToJsonString(schema: DescMessage, message: Message): string {
  const write = writerOf(schema);
  if (write !== undefined) {
    try {
      return JSON.stringify(write(message));
    } catch (e) {
      if (e !== FALLBACK) throw e;
    }
  }
  return toJsonString(schema, message);
}

/** Thrown inside a writer to let protobuf-es handle the whole message; never escapes. */
const FALLBACK = Symbol("meshwork.json.fallback");

type Writer = (m: unknown) => Record<string, JsonValue>;
type ValueWriter = (v: unknown) => JsonValue;

// undefined: protobuf-es writes the type; "pending" marks a type being compiled (recursion).
const writers = new Map<DescMessage, Writer | undefined | "pending">();

function writerOf(schema: DescMessage): Writer | undefined {
  const known = writers.get(schema);
  if (known !== undefined) return known === "pending" ? lazy(schema) : known;
  if (writers.has(schema)) return undefined;
  writers.set(schema, "pending");
  const w = compile(schema);
  writers.set(schema, w);
  return w;
}

/** A recursive type refers to itself while compiling: look the writer up at call time. */
function lazy(schema: DescMessage): Writer {
  return (m) => {
    const w = writers.get(schema);
    if (typeof w !== "function") throw FALLBACK;
    return w(m);
  };
}

function compile(schema: DescMessage): Writer | undefined {
  if (schema.typeName.startsWith("google.protobuf.")) return undefined;
  const fields: Array<(m: Record<string, unknown>, out: Record<string, JsonValue>) => void> = [];
  for (const f of [...schema.fields].sort((a, b) => a.number - b.number)) {
    const w = fieldWriter(f);
    if (w === undefined) return undefined;
    fields.push(w);
  }
  return (m) => {
    if (typeof m !== "object" || m === null) throw FALLBACK;
    const out: Record<string, JsonValue> = {};
    for (let i = 0; i < fields.length; i++) fields[i](m as Record<string, unknown>, out);
    return out;
  };
}

/** Writes one field into the JSON object when protobuf-es would (its isSet), under its JSON name. */
function fieldWriter(f: DescField): ((m: Record<string, unknown>, out: Record<string, JsonValue>) => void) | undefined {
  // Not in the contracts the gateway fronts: protobuf-es writes such types.
  if (f.presence === FeatureSet_FieldPresence.LEGACY_REQUIRED || f.oneof !== undefined) return undefined;
  const name = f.localName;
  const key = f.jsonName;
  if (f.fieldKind === "map") return undefined;
  if (f.fieldKind === "list") {
    const item = f.listKind === "message" ? messageValue(f.message) : f.listKind === "scalar" ? scalarValue(f) : undefined;
    if (item === undefined) return undefined;
    return (m, out) => {
      const list = m[name];
      if (!Array.isArray(list)) throw FALLBACK;
      if (list.length === 0) return;
      const arr: JsonValue[] = new Array(list.length);
      for (let i = 0; i < list.length; i++) arr[i] = item(list[i]);
      out[key] = arr;
    };
  }
  const value = f.fieldKind === "message" ? messageValue(f.message) : f.fieldKind === "scalar" ? scalarValue(f) : undefined;
  if (value === undefined) return undefined;
  if (f.presence !== FeatureSet_FieldPresence.IMPLICIT) {
    return (m, out) => {
      const v = m[name];
      if (v !== undefined && Object.prototype.hasOwnProperty.call(m, name)) out[key] = value(v);
    };
  }
  if (f.fieldKind !== "scalar") return undefined;
  const t = f.scalar;
  return (m, out) => {
    const v = m[name];
    if (!isScalarZeroValue(t, v)) out[key] = value(v);
  };
}

function messageValue(schema: DescMessage): ValueWriter | undefined {
  const w = writerOf(schema);
  return w === undefined ? undefined : (v) => w(v);
}

/** protobuf-es' scalarToJson for values it accepts; anything it would refuse falls back. */
function scalarValue(f: DescField): ValueWriter | undefined {
  switch (f.scalar) {
    case ScalarType.INT32:
    case ScalarType.SFIXED32:
    case ScalarType.SINT32:
    case ScalarType.FIXED32:
    case ScalarType.UINT32:
      return (v) => {
        if (typeof v !== "number") throw FALLBACK;
        return v;
      };
    case ScalarType.FLOAT:
    case ScalarType.DOUBLE:
      return (v) => {
        if (typeof v !== "number") throw FALLBACK;
        if (Number.isNaN(v)) return "NaN";
        if (v === Number.POSITIVE_INFINITY) return "Infinity";
        if (v === Number.NEGATIVE_INFINITY) return "-Infinity";
        return v;
      };
    case ScalarType.STRING:
      return (v) => {
        if (typeof v !== "string") throw FALLBACK;
        return v;
      };
    case ScalarType.BOOL:
      return (v) => {
        if (typeof v !== "boolean") throw FALLBACK;
        return v;
      };
    case ScalarType.UINT64:
    case ScalarType.FIXED64:
    case ScalarType.INT64:
    case ScalarType.SFIXED64:
    case ScalarType.SINT64:
      return (v) => {
        if (typeof v === "bigint" || typeof v === "string" || (typeof v === "number" && Number.isInteger(v))) return v.toString();
        throw FALLBACK;
      };
    default:
      return undefined;
  }
}

/**
 * The request message of a parsed JSON body, as protobuf-es' `fromJson` with unknown fields
 * refused builds it (create(), then the fields set), compiled per message type: fromJson's
 * reflection was ~1.1 µs of a catalog call, this is ~0.1. Only plain values are read here:
 * strings without surrogates, booleans, 32-bit integers given as numbers, nested messages and
 * lists of those. Anything else in the input (nulls, numbers as strings, unknown or repeated
 * keys, deep nesting) and message types with other field kinds go to protobuf-es, so its exact
 * result or error is kept.
 */
export function messageFromJsonValue(schema: DescMessage, json: JsonValue): Message {
  const read = readerOf(schema);
  if (read !== undefined) {
    try {
      return read(json, 0);
    } catch (e) {
      if (e !== FALLBACK) throw e;
    }
  }
  return fromJson(schema, json, { ignoreUnknownFields: false });
}

// Deeper input goes to protobuf-es, which applies its own recursion limit.
const MAX_READ_DEPTH = 32;
// Lone or paired surrogates: protobuf-es checks them (invalid UTF-16 is refused); rare in practice.
const SURROGATE = /[\ud800-\udfff]/;
type Reader = (json: unknown, depth: number) => Message;
type ValueReader = (v: unknown, depth: number) => unknown;

const readers = new Map<DescMessage, Reader | undefined | "pending">();

function readerOf(schema: DescMessage): Reader | undefined {
  const known = readers.get(schema);
  if (known !== undefined) {
    if (known !== "pending") return known;
    return (json, depth) => {
      const r = readers.get(schema);
      if (typeof r !== "function") throw FALLBACK;
      return r(json, depth);
    };
  }
  if (readers.has(schema)) return undefined;
  readers.set(schema, "pending");
  const r = compileReader(schema);
  readers.set(schema, r);
  return r;
}

function compileReader(schema: DescMessage): Reader | undefined {
  if (schema.typeName.startsWith("google.protobuf.")) return undefined;
  // Fields by JSON name and by proto name: protobuf-es accepts both.
  const byKey = new Map<string, { index: number; name: string; read: ValueReader }>();
  schema.fields.forEach((f, index) => {
    const read = fieldReader(f);
    if (read === undefined) return;
    const entry = { index, name: f.localName, read };
    byKey.set(f.name, entry).set(f.jsonName, entry);
  });
  for (const f of schema.fields) if (!byKey.has(f.name)) return undefined;
  const fieldCount = schema.fields.length;
  return (json, depth) => {
    if (typeof json !== "object" || json === null || Array.isArray(json) || depth > MAX_READ_DEPTH) throw FALLBACK;
    const m = create(schema) as unknown as Record<string, unknown>;
    // A field named twice (by both of its names) is protobuf-es' error to report.
    let seen = fieldCount <= 31 ? 0 : -1;
    for (const key in json) {
      const entry = byKey.get(key);
      if (entry === undefined) throw FALLBACK;
      if (seen >= 0) {
        const bit = 1 << entry.index;
        if (seen & bit) throw FALLBACK;
        seen |= bit;
      }
      m[entry.name] = entry.read((json as Record<string, unknown>)[key], depth);
    }
    if (seen < 0) throw FALLBACK;
    return m as unknown as Message;
  };
}

function fieldReader(f: DescField): ValueReader | undefined {
  // Explicit presence (proto3 optional), oneofs and proto2 semantics stay with protobuf-es.
  if (f.oneof !== undefined) return undefined;
  if (f.fieldKind === "list") {
    const item = f.listKind === "message" ? messageReader(f.message) : f.listKind === "scalar" ? scalarReader(f.scalar) : undefined;
    if (item === undefined) return undefined;
    return (v, depth) => {
      if (!Array.isArray(v)) throw FALLBACK;
      const out: unknown[] = new Array(v.length);
      for (let i = 0; i < v.length; i++) out[i] = item(v[i], depth);
      return out;
    };
  }
  if (f.fieldKind === "message") return messageReader(f.message);
  if (f.fieldKind === "scalar" && f.presence === FeatureSet_FieldPresence.IMPLICIT) return scalarReader(f.scalar);
  return undefined;
}

function messageReader(schema: DescMessage): ValueReader | undefined {
  const r = readerOf(schema);
  return r === undefined ? undefined : (v, depth) => r(v, depth + 1);
}

function scalarReader(t: ScalarType): ValueReader | undefined {
  switch (t) {
    case ScalarType.STRING:
      return (v) => {
        if (typeof v !== "string" || SURROGATE.test(v)) throw FALLBACK;
        return v;
      };
    case ScalarType.BOOL:
      return (v) => {
        if (typeof v !== "boolean") throw FALLBACK;
        return v;
      };
    case ScalarType.INT32:
    case ScalarType.SINT32:
    case ScalarType.SFIXED32:
      return (v) => {
        if (typeof v !== "number" || !Number.isInteger(v) || v > 0x7fffffff || v < -0x80000000) throw FALLBACK;
        return v;
      };
    case ScalarType.UINT32:
    case ScalarType.FIXED32:
      return (v) => {
        if (typeof v !== "number" || !Number.isInteger(v) || v > 0xffffffff || v < 0) throw FALLBACK;
        return v;
      };
    default:
      return undefined;
  }
}
