import {
  create,
  fromJson,
  protoInt64,
  ScalarType,
  toJsonString,
  type DescEnum,
  type DescField,
  type DescMessage,
  type JsonValue,
  type Message,
} from "@bufbuild/protobuf";
import { isScalarZeroValue } from "@bufbuild/protobuf/reflect";
import { base64Decode, base64Encode } from "@bufbuild/protobuf/wire";
import { FeatureSet_FieldPresence, TimestampSchema, type Timestamp } from "@bufbuild/protobuf/wkt";

/**
 * Proto3 JSON of a response message, compiled once per message type. protobuf-es' toJsonString
 * wraps every message and field in reflection objects; for a catalog answer that was ~1.9 µs of
 * the gateway's ~40 µs per request. The compiled writer builds the very JSON value protobuf-es
 * builds (same keys, same order: fields by number; same omissions: implicit-presence zero values,
 * empty lists, unset oneofs; same values: enum names or unknown numbers, 64-bit integers as
 * decimal strings, bytes as padded standard base64, Timestamps as RFC 3339 with 0, 3, 6 or 9
 * fractional digits) and stringifies it the same way, so the text is identical. Anything outside
 * that stays with protobuf-es: message types with maps, well-known types other than Timestamp,
 * google.protobuf.NullValue or proto2 required fields use it for the whole message, and a value
 * that does not fit its field (an out-of-range Timestamp, an enum that is not a number...) makes
 * that call fall back, so protobuf-es' exact output or error is kept.
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

/**
 * Which directions of `schema` the compiled codec handles (the rest goes to protobuf-es for the
 * whole message). For tests and diagnostics; compiles the type if it was not compiled yet.
 */
export function jsonCodecCoverage(schema: DescMessage): { write: boolean; read: boolean } {
  return { write: writerOf(schema) !== undefined, read: readerOf(schema) !== undefined };
}

/** Thrown inside a writer or reader to let protobuf-es handle the whole message; never escapes. */
const FALLBACK = Symbol("meshwork.json.fallback");

const TIMESTAMP = TimestampSchema.typeName;
// protobuf-es' Timestamp range (timestampToJson / timestampFromJson), in epoch milliseconds.
const TIMESTAMP_MIN_MS = Date.parse("0001-01-01T00:00:00Z");
const TIMESTAMP_MAX_MS = Date.parse("9999-12-31T23:59:59Z");
// protobuf-es writes JSON null for this enum and reads null as a value: left to it.
const NULL_VALUE = "google.protobuf.NullValue";

type Writer = (m: unknown) => JsonValue;
type FieldWriter = (m: Record<string, unknown>, out: Record<string, JsonValue>) => void;

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
  if (schema.typeName === TIMESTAMP) return writeTimestamp;
  if (schema.typeName.startsWith("google.protobuf.")) return undefined;
  const fields: FieldWriter[] = [];
  for (const f of [...schema.fields].sort((a, b) => a.number - b.number)) {
    const w = fieldWriter(f);
    if (w === undefined) return undefined;
    fields.push(w);
  }
  const typeName = schema.typeName;
  return (m) => {
    // protobuf-es refuses a message of another type (its field access checks $typeName).
    if (typeof m !== "object" || m === null || (m as { $typeName?: unknown }).$typeName !== typeName) throw FALLBACK;
    const out: Record<string, JsonValue> = {};
    for (let i = 0; i < fields.length; i++) fields[i](m as Record<string, unknown>, out);
    return out;
  };
}

/** Writes one field into the JSON object when protobuf-es would (its isSet), under its JSON name. */
function fieldWriter(f: DescField): FieldWriter | undefined {
  // Not in the contracts the gateway fronts: protobuf-es writes such types.
  if (f.presence === FeatureSet_FieldPresence.LEGACY_REQUIRED || f.fieldKind === "map") return undefined;
  const name = f.localName;
  const key = f.jsonName;
  if (f.fieldKind === "list") {
    const item = valueWriter(f, f.listKind);
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
  const value = valueWriter(f, f.fieldKind);
  if (value === undefined) return undefined;
  if (f.oneof !== undefined) {
    // Set when the group's case names this field; the value is the group's value.
    const group = f.oneof.localName;
    return (m, out) => {
      const o = m[group];
      if (typeof o !== "object" || o === null) throw FALLBACK;
      if ((o as { case?: unknown }).case === name) out[key] = value((o as { value?: unknown }).value);
    };
  }
  if (f.presence !== FeatureSet_FieldPresence.IMPLICIT) {
    return (m, out) => {
      const v = m[name];
      if (v !== undefined && Object.prototype.hasOwnProperty.call(m, name)) out[key] = value(v);
    };
  }
  if (f.fieldKind === "enum") {
    // protobuf-es' isSet for an implicit enum compares with the first value, not with 0.
    const zero = f.enum.values[0].number;
    return (m, out) => {
      const v = m[name];
      if (v !== zero) out[key] = value(v);
    };
  }
  if (f.fieldKind !== "scalar") return undefined;
  const t = f.scalar;
  return (m, out) => {
    const v = m[name];
    if (!isScalarZeroValue(t, v)) out[key] = value(v);
  };
}

function valueWriter(f: DescField, kind: "scalar" | "enum" | "message"): Writer | undefined {
  if (kind === "message") {
    const w = writerOf(f.message!);
    return w === undefined ? undefined : (v) => w(v);
  }
  if (kind === "enum") return enumValue(f.enum!);
  return scalarValue(f);
}

/** protobuf-es' enumToJsonInternal: the value's name, or the number itself when it has none. */
function enumValue(desc: DescEnum): Writer | undefined {
  if (desc.typeName === NULL_VALUE) return undefined;
  const byNumber = desc.value;
  return (v) => {
    if (typeof v !== "number") throw FALLBACK;
    const known = byNumber[v];
    return known !== undefined ? known.name : v;
  };
}

// Canonical decimal integers: BigInt(s).toString() === s for these and no others.
const CANONICAL_INT = /^(?:0|-?[1-9][0-9]*)$/;
const INT64_MIN = -(2n ** 63n);
const INT64_MAX = 2n ** 63n - 1n;
const UINT64_MAX = 2n ** 64n - 1n;

/** The range protobuf-es checks a 64-bit field's values against, reading and writing. */
function int64Range(f: DescField): [bigint, bigint] {
  return f.scalar === ScalarType.UINT64 || f.scalar === ScalarType.FIXED64 ? [0n, UINT64_MAX] : [INT64_MIN, INT64_MAX];
}
const inRange = (b: bigint, min: bigint, max: bigint) => b >= min && b <= max;

/** protobuf-es' scalarToJson for values it accepts; anything it would refuse falls back. */
function scalarValue(f: DescField): Writer | undefined {
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
    case ScalarType.SINT64: {
      // With jstype = JS_STRING protobuf-es first parses a string value (range checked, so
      // "007" is written "7"): only strings that parse to themselves are written here.
      const [min, max] = int64Range(f);
      const parsesString = "longAsString" in f && f.longAsString;
      return (v) => {
        if (typeof v === "string") {
          if (parsesString && !(CANONICAL_INT.test(v) && inRange(BigInt(v), min, max))) throw FALLBACK;
          return v;
        }
        if (typeof v === "bigint" || (typeof v === "number" && Number.isInteger(v))) return v.toString();
        throw FALLBACK;
      };
    }
    case ScalarType.BYTES:
      return (v) => {
        if (!(v instanceof Uint8Array)) throw FALLBACK;
        return base64Encode(v);
      };
    default:
      return undefined;
  }
}

/** protobuf-es' timestampToJson for Timestamps it accepts (in range, nanos 0..999999999). */
function writeTimestamp(m: unknown): JsonValue {
  if (typeof m !== "object" || m === null) throw FALLBACK;
  const { seconds, nanos } = m as { seconds?: unknown; nanos?: unknown };
  // Other representations (number or string seconds, fractional nanos) are rare: protobuf-es.
  if (typeof seconds !== "bigint" || typeof nanos !== "number" || !Number.isInteger(nanos) || nanos < 0 || nanos > 999_999_999) throw FALLBACK;
  const ms = Number(seconds) * 1000;
  if (ms < TIMESTAMP_MIN_MS || ms > TIMESTAMP_MAX_MS) throw FALLBACK;
  let z = "Z";
  if (nanos > 0) {
    // 3, 6 or 9 fractional digits, the fewest that keep the value.
    const digits = (nanos + 1_000_000_000).toString().substring(1);
    if (digits.substring(3) === "000000") z = "." + digits.substring(0, 3) + "Z";
    else if (digits.substring(6) === "000") z = "." + digits.substring(0, 6) + "Z";
    else z = "." + digits + "Z";
  }
  return new Date(ms).toISOString().replace(".000Z", z);
}

/**
 * The request message of a parsed JSON body, as protobuf-es' `fromJson` with unknown fields
 * refused builds it (create(), then the fields set), compiled per message type: fromJson's
 * reflection was ~1.1 µs of a catalog call, this is ~0.1. Read here: strings without surrogates,
 * booleans, 32-bit integers given as numbers, 64-bit integers given as integral numbers or plain
 * decimal strings (range checked), open enums by name or int32 number, bytes (protobuf-es' own
 * base64 decoder: standard or URL-safe, padding optional), RFC 3339 Timestamps (protobuf-es'
 * pattern and range), oneof members, proto3 optional fields, nested messages and lists of those.
 * Anything else in the input (nulls, 32-bit numbers as strings, "1e3" or " 12" for 64-bit fields,
 * unknown enum names, unknown or repeated keys, two members of one oneof, deep nesting) and
 * message types with other field kinds (maps, closed enums, other well-known types) go to
 * protobuf-es, so its exact result or error is kept.
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
// protobuf-es' timestampFromJson pattern, verbatim.
const RFC3339 = /^([0-9]{4})-([0-9]{2})-([0-9]{2})T([0-9]{2}):([0-9]{2}):([0-9]{2})(?:\.([0-9]{1,9}))?(?:Z|([+-][0-9][0-9]:[0-9][0-9]))$/;
// Plain decimal integers; anything else BigInt() accepts ("0x1f", " 12", "+1") is protobuf-es'.
const DECIMAL_INT = /^-?[0-9]+$/;
// The bitmasks below track fields and oneofs by index in one int32.
const MAX_TRACKED = 31;
const INT32_MIN = -0x80000000;
const INT32_MAX = 0x7fffffff;
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

interface FieldEntry {
  bit: number;
  name: string;
  // The oneof group's property and bit, when the field is a member of one.
  group: string | undefined;
  groupBit: number;
  read: ValueReader;
}

function compileReader(schema: DescMessage): Reader | undefined {
  if (schema.typeName === TIMESTAMP) return readTimestamp;
  if (schema.typeName.startsWith("google.protobuf.")) return undefined;
  if (schema.fields.length > MAX_TRACKED || schema.oneofs.length > MAX_TRACKED) return undefined;
  // Fields by proto name and by JSON name, later fields winning, as protobuf-es' getJsonField.
  const byKey = new Map<string, FieldEntry>();
  for (let i = 0; i < schema.fields.length; i++) {
    const f = schema.fields[i];
    const read = fieldReader(f);
    if (read === undefined) return undefined;
    const entry: FieldEntry = {
      bit: 1 << i,
      name: f.localName,
      group: f.oneof?.localName,
      groupBit: f.oneof ? 1 << schema.oneofs.indexOf(f.oneof) : 0,
      read,
    };
    byKey.set(f.name, entry).set(f.jsonName, entry);
  }
  return (json, depth) => {
    if (typeof json !== "object" || json === null || Array.isArray(json) || depth > MAX_READ_DEPTH) throw FALLBACK;
    const m = create(schema) as unknown as Record<string, unknown>;
    // A field named twice (by both of its names) or two members of one oneof: protobuf-es' error.
    let seen = 0;
    let groups = 0;
    for (const key in json) {
      const entry = byKey.get(key);
      if (entry === undefined || seen & entry.bit) throw FALLBACK;
      seen |= entry.bit;
      const value = entry.read((json as Record<string, unknown>)[key], depth);
      if (entry.group === undefined) {
        m[entry.name] = value;
      } else {
        if (groups & entry.groupBit) throw FALLBACK;
        groups |= entry.groupBit;
        m[entry.group] = { case: entry.name, value };
      }
    }
    return m as unknown as Message;
  };
}

function fieldReader(f: DescField): ValueReader | undefined {
  if (f.fieldKind === "map") return undefined;
  if (f.fieldKind === "list") {
    const item = valueReader(f, f.listKind);
    if (item === undefined) return undefined;
    return (v, depth) => {
      if (!Array.isArray(v)) throw FALLBACK;
      const out: unknown[] = new Array(v.length);
      for (let i = 0; i < v.length; i++) out[i] = item(v[i], depth);
      return out;
    };
  }
  // protobuf-es sets a scalar or enum as an own property (or the oneof's case) whatever its
  // presence, except that proto2 required fields have checks of their own.
  if (f.presence === FeatureSet_FieldPresence.LEGACY_REQUIRED) return undefined;
  return valueReader(f, f.fieldKind);
}

function valueReader(f: DescField, kind: "scalar" | "enum" | "message"): ValueReader | undefined {
  if (kind === "message") {
    const r = readerOf(f.message!);
    return r === undefined ? undefined : (v, depth) => r(v, depth + 1);
  }
  if (kind === "enum") return enumReader(f.enum!);
  return scalarReader(f);
}

/** protobuf-es' readEnum for an open enum: a known name, or any int32 number. */
function enumReader(desc: DescEnum): ValueReader | undefined {
  // A closed enum refuses unknown numbers; NullValue reads null as a value.
  if (!desc.open || desc.typeName === NULL_VALUE) return undefined;
  const byName = new Map<string, number>();
  for (const v of desc.values) if (!byName.has(v.name)) byName.set(v.name, v.number);
  return (v) => {
    if (typeof v === "string") {
      // An unknown name is an error with ignoreUnknownFields false (the gateway's setting).
      const n = byName.get(v);
      if (n === undefined) throw FALLBACK;
      return n;
    }
    if (typeof v !== "number" || !Number.isInteger(v) || v > INT32_MAX || v < INT32_MIN) throw FALLBACK;
    return v;
  };
}

function scalarReader(f: DescField): ValueReader | undefined {
  switch (f.scalar) {
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
        if (typeof v !== "number" || !Number.isInteger(v) || v > INT32_MAX || v < INT32_MIN) throw FALLBACK;
        return v;
      };
    case ScalarType.UINT32:
    case ScalarType.FIXED32:
      return (v) => {
        if (typeof v !== "number" || !Number.isInteger(v) || v > 0xffffffff || v < 0) throw FALLBACK;
        return v;
      };
    case ScalarType.INT64:
    case ScalarType.SINT64:
    case ScalarType.SFIXED64:
    case ScalarType.UINT64:
    case ScalarType.FIXED64: {
      // Without BigInt (BUF_BIGINT_DISABLE) protobuf-es keeps strings: left to it.
      if (!protoInt64.supported) return undefined;
      const [min, max] = int64Range(f);
      // protobuf-es checks BigInt(json) against the range, then stores that bigint, or with
      // jstype = JS_STRING the input as String(json).
      const asString = "longAsString" in f && f.longAsString;
      return (v) => {
        if (!((typeof v === "number" && Number.isInteger(v)) || (typeof v === "string" && DECIMAL_INT.test(v)))) throw FALLBACK;
        const b = BigInt(v);
        if (!inRange(b, min, max)) throw FALLBACK;
        return asString ? String(v) : b;
      };
    }
    case ScalarType.BYTES:
      return (v) => {
        if (typeof v !== "string") throw FALLBACK;
        if (v === "") return new Uint8Array(0);
        try {
          // protobuf-es' own decoder: it skips whitespace and inner padding, accepts URL-safe
          // characters and ignores trailing bits, none of which Buffer mirrors exactly.
          return base64Decode(v);
        } catch {
          throw FALLBACK;
        }
      };
    default:
      return undefined;
  }
}

/** protobuf-es' timestampFromJson for strings it accepts; its errors are its own. */
function readTimestamp(json: unknown): Message {
  if (typeof json !== "string") throw FALLBACK;
  const m = RFC3339.exec(json);
  if (m === null) throw FALLBACK;
  const ms = Date.parse(m[1] + "-" + m[2] + "-" + m[3] + "T" + m[4] + ":" + m[5] + ":" + m[6] + (m[8] ? m[8] : "Z"));
  // NaN (an impossible date) fails both comparisons.
  if (!(ms >= TIMESTAMP_MIN_MS && ms <= TIMESTAMP_MAX_MS)) throw FALLBACK;
  const ts: Timestamp = create(TimestampSchema);
  ts.seconds = protoInt64.parse(ms / 1000);
  ts.nanos = m[7] ? parseInt("1" + m[7] + "0".repeat(9 - m[7].length)) - 1_000_000_000 : 0;
  return ts;
}
