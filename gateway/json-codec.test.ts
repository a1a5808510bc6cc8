import {
  create,
  createFileRegistry,
  equals,
  fromJson,
  ScalarType,
  toJson,
  toJsonString,
  type DescField,
  type DescMessage,
  type JsonValue,
  type Message,
} from "@bufbuild/protobuf";
import {
  file_google_protobuf_duration,
  file_google_protobuf_timestamp,
  FieldDescriptorProto_Label as Label,
  FieldDescriptorProto_Type as Type,
  FieldOptions_JSType,
  FileDescriptorProtoSchema,
  TimestampSchema,
} from "@bufbuild/protobuf/wkt";
import { GetProductResponseSchema } from "../gen/catalog/v1/catalog_pb.js";
import { jsonCodecCoverage, messageFromJsonValue, messageToJsonString } from "./json-codec.js";
import { prng as rng } from "../mesh/testing/prng.js";
import { exposedMethods } from "./methods.js";

// protobuf-es' fromJson and toJsonString as the codec sees them, counted, so a test can check
// that the compiled path handled a call instead of falling back.
jest.mock("@bufbuild/protobuf", () => {
  const actual = jest.requireActual<typeof import("@bufbuild/protobuf")>("@bufbuild/protobuf");
  return { ...actual, fromJson: jest.fn(actual.fromJson), toJsonString: jest.fn(actual.toJsonString) };
});

type Rng = () => number;
const pick = <T>(r: Rng, xs: readonly T[]): T => xs[Math.floor(r() * xs.length)];

// ---------------------------------------------------------------------------------------------
// Test-only message types. No shop contract has a oneof, bytes, every 64-bit kind, jstype =
// JS_STRING, proto3 optional scalars, a closed enum or a map, so these types give the
// differential tests those kinds (built from descriptors here: no generated code to keep).

const PKG = "meshwork.test.codec.v1";
const camel = (s: string) => s.replace(/_([a-z0-9])/g, (_, c: string) => c.toUpperCase());

interface FieldSpec {
  type: Type;
  label?: Label;
  typeName?: string;
  oneofIndex?: number;
  proto3Optional?: boolean;
  jsString?: boolean;
}

function fields(specs: Record<string, FieldSpec>) {
  return Object.entries(specs).map(([name, s], i) => ({
    name,
    number: i + 1,
    jsonName: camel(name),
    label: s.label ?? Label.OPTIONAL,
    type: s.type,
    typeName: s.typeName,
    oneofIndex: s.oneofIndex,
    proto3Optional: s.proto3Optional,
    options: s.jsString ? { jstype: FieldOptions_JSType.JS_STRING } : undefined,
  }));
}

const REP = Label.REPEATED;
const TS = { type: Type.MESSAGE, typeName: ".google.protobuf.Timestamp" };
const COLOR = { type: Type.ENUM, typeName: `.${PKG}.Color` };

const kindsFile = create(FileDescriptorProtoSchema, {
  name: "meshwork/test/codec/v1/kinds.proto",
  package: PKG,
  syntax: "proto3",
  dependency: ["google/protobuf/timestamp.proto", "google/protobuf/duration.proto"],
  enumType: [{ name: "Color", value: [{ name: "COLOR_UNSPECIFIED", number: 0 }, { name: "COLOR_RED", number: 1 }, { name: "COLOR_BLUE", number: 2 }] }],
  messageType: [
    {
      name: "Kinds",
      field: fields({
        i64: { type: Type.INT64 },
        u64: { type: Type.UINT64 },
        s64: { type: Type.SINT64 },
        f64: { type: Type.FIXED64 },
        sf64: { type: Type.SFIXED64 },
        i64_str: { type: Type.INT64, jsString: true },
        u64_str: { type: Type.UINT64, jsString: true },
        data: { type: Type.BYTES },
        chunks: { type: Type.BYTES, label: REP },
        color: COLOR,
        colors: { ...COLOR, label: REP },
        at: TS,
        times: { ...TS, label: REP },
        text: { type: Type.STRING, oneofIndex: 0 },
        big: { type: Type.INT64, oneofIndex: 0 },
        blob: { type: Type.BYTES, oneofIndex: 0 },
        hue: { ...COLOR, oneofIndex: 0 },
        inner: { type: Type.MESSAGE, typeName: `.${PKG}.Inner`, oneofIndex: 0 },
        when: { ...TS, oneofIndex: 0 },
        // Members of one type: a value that fits one fits all, so only the case tells them apart.
        note: { type: Type.STRING, oneofIndex: 1 },
        memo: { type: Type.STRING, oneofIndex: 1 },
        flag: { type: Type.BOOL },
        maybe_i64: { type: Type.INT64, oneofIndex: 2, proto3Optional: true },
        maybe_color: { ...COLOR, oneofIndex: 3, proto3Optional: true },
        maybe_data: { type: Type.BYTES, oneofIndex: 4, proto3Optional: true },
        longs: { type: Type.INT64, label: REP },
        ulongs: { type: Type.UINT64, label: REP },
        child: { type: Type.MESSAGE, typeName: `.${PKG}.Kinds` },
      }),
      oneofDecl: [{ name: "choice" }, { name: "other" }, { name: "_maybe_i64" }, { name: "_maybe_color" }, { name: "_maybe_data" }],
    },
    { name: "Inner", field: fields({ name: { type: Type.STRING }, color: COLOR, at: TS }) },
    {
      name: "WithMap",
      field: fields({ id: { type: Type.STRING }, labels: { type: Type.MESSAGE, typeName: `.${PKG}.WithMap.LabelsEntry`, label: REP } }),
      nestedType: [{ name: "LabelsEntry", options: { mapEntry: true }, field: fields({ key: { type: Type.STRING }, value: { type: Type.STRING } }) }],
    },
    { name: "WithDuration", field: fields({ id: { type: Type.STRING }, ttl: { type: Type.MESSAGE, typeName: ".google.protobuf.Duration" } }) },
  ],
});

const legacyFile = create(FileDescriptorProtoSchema, {
  name: "meshwork/test/codec/v1/legacy.proto",
  package: PKG,
  syntax: "proto2",
  enumType: [{ name: "Shade", value: [{ name: "SHADE_LIGHT", number: 1 }, { name: "SHADE_DARK", number: 2 }] }],
  messageType: [
    { name: "Legacy", field: fields({ shade: { type: Type.ENUM, typeName: `.${PKG}.Shade` }, count: { type: Type.INT64 }, label: { type: Type.STRING } }) },
    {
      name: "Optional2",
      field: fields({ count: { type: Type.INT64 }, label: { type: Type.STRING }, data: { type: Type.BYTES }, sizes: { type: Type.UINT64, label: REP } }),
    },
    { name: "Required", field: fields({ id: { type: Type.STRING, label: Label.REQUIRED } }) },
  ],
});

const deps: Record<string, unknown> = {
  "google/protobuf/timestamp.proto": file_google_protobuf_timestamp,
  "google/protobuf/duration.proto": file_google_protobuf_duration,
};
const kindsRegistry = createFileRegistry(kindsFile, (n) => deps[n] as never);
const legacyRegistry = createFileRegistry(legacyFile, () => undefined);
const testType = (name: string): DescMessage => (kindsRegistry.getMessage(`${PKG}.${name}`) ?? legacyRegistry.getMessage(`${PKG}.${name}`))!;
const TEST_TYPES = ["Kinds", "Inner", "WithMap", "WithDuration", "Legacy", "Optional2", "Required"].map(testType);

// ---------------------------------------------------------------------------------------------
// Random messages.

const SURROGATE = /[\ud800-\udfff](?![\udc00-\udfff])/;
const STRINGS = ["", "p1", "Bench product", 'quote " and \\ backslash', "line\nbreak\u0000nul", "ünïcödé ☕ 𝄞", "\ud800 lone surrogate", "</script>"];
const NUMBERS = [0, -0, 1, -1, 2147483647, -2147483648, 0.5, 1e21, Number.NaN, Number.POSITIVE_INFINITY, Number.NEGATIVE_INFINITY];
// int64 and uint64 extremes, beyond 2^53, and small values.
const LONGS = [0n, 1n, -1n, 1000n, 9007199254740993n, -9223372036854775808n, 9223372036854775807n, 18446744073709551615n];
const INT64_MIN = -(2n ** 63n);
const INT64_MAX = 2n ** 63n - 1n;
// Timestamp seconds: the epoch, now-ish, both ends of protobuf-es' range and one past each.
const TS_SECONDS = [0n, 1n, -1n, 1700000000n, -62135596800n, 253402300799n];
const TS_SECONDS_OUT = [-62135596801n, 253402300800n, 9223372036854775807n];
// Nanos giving 0, 3, 6 and 9 fractional digits, and both ends.
const TS_NANOS = [0, 1, 10, 1000, 1000000, 500000000, 123456789, 120000000, 999999999];
const TS_NANOS_OUT = [-1, 1000000000];

function isLong(t: ScalarType | undefined): boolean {
  return t === ScalarType.INT64 || t === ScalarType.SINT64 || t === ScalarType.SFIXED64 || t === ScalarType.UINT64 || t === ScalarType.FIXED64;
}
const isUnsigned = (t: ScalarType | undefined) => t === ScalarType.UINT64 || t === ScalarType.FIXED64;

function scalar(f: DescField, r: Rng, wild: boolean): unknown {
  switch (f.scalar) {
    case ScalarType.STRING:
      // A lone surrogate is written as is but refused on input.
      return pick(r, wild ? STRINGS : STRINGS.filter((x) => !SURROGATE.test(x)));
    case ScalarType.BOOL:
      return r() < 0.5;
    case ScalarType.BYTES:
      return r() < 0.3 ? new Uint8Array(0) : Uint8Array.from({ length: Math.floor(r() * 7) + 1 }, () => Math.floor(r() * 256));
    case ScalarType.DOUBLE:
    case ScalarType.FLOAT:
      return pick(r, NUMBERS);
    case ScalarType.UINT32:
    case ScalarType.FIXED32:
      return pick(r, [0, 1, 4294967295]);
    default:
      if (isLong(f.scalar)) {
        const v = pick(r, LONGS.filter((x) => (isUnsigned(f.scalar) ? x >= 0n : x >= INT64_MIN && x <= INT64_MAX)));
        return "longAsString" in f && f.longAsString ? String(v) : v;
      }
      return pick(r, [0, 1, -1, 2147483647, -2147483648]);
  }
}

/**
 * A random message of `schema`: every field set or left at its zero value, lists empty or not,
 * oneofs set to any member or none, enums sometimes unknown numbers. `wild` also gives values
 * protobuf-es refuses to write or read back: Timestamps out of range or with bad nanos, strings
 * with lone surrogates.
 */
function randomMessage(schema: DescMessage, r: Rng, wild: boolean, depth = 0): Message {
  if (schema.typeName === TimestampSchema.typeName) {
    const out = wild && r() < 0.15;
    return create(TimestampSchema, { seconds: pick(r, out && r() < 0.5 ? TS_SECONDS_OUT : TS_SECONDS), nanos: pick(r, out ? TS_NANOS_OUT : TS_NANOS) });
  }
  const init: Record<string, unknown> = {};
  const value = (f: DescField, kind: string): unknown => {
    if (kind === "message") return depth < 3 ? randomMessage(f.message!, r, wild, depth + 1) : create(f.message!);
    if (kind === "enum") return r() < 0.15 ? pick(r, [99, -5, 2147483647]) : pick(r, f.enum!.values).number;
    return scalar(f, r, wild);
  };
  for (const f of schema.fields) {
    if (r() < 0.25) continue;
    if (f.oneof) {
      if (r() < 0.5) init[f.oneof.localName] = { case: f.localName, value: value(f, f.fieldKind) };
      continue;
    }
    if (f.fieldKind === "list") init[f.localName] = r() < 0.3 ? [] : Array.from({ length: Math.floor(r() * 3) + 1 }, () => value(f, f.listKind));
    else if (f.fieldKind === "map") continue;
    else init[f.localName] = value(f, f.fieldKind);
  }
  return create(schema, init as never);
}

/** Values of the wrong representation for a field, as a buggy service could hand the gateway. */
function oddValue(f: DescField, r: Rng): unknown {
  if (f.fieldKind === "list") return pick(r, [undefined, null, "x", [undefined]]);
  if (f.oneof && r() < 0.3) return { oneof: pick(r, [null, undefined, { case: f.localName }, { case: "nope", value: 1 }, { case: undefined }]) };
  if (f.fieldKind === "enum") return pick(r, [1.5, "COLOR_RED", undefined, Number.NaN, -0, 2 ** 40]);
  if (f.message?.typeName === TimestampSchema.typeName) {
    return pick(r, [
      { $typeName: TimestampSchema.typeName, seconds: 5, nanos: 0 },
      { $typeName: TimestampSchema.typeName, seconds: 5n, nanos: 1.5 },
      { $typeName: TimestampSchema.typeName, seconds: "5", nanos: 0 },
      { $typeName: "other.Type", seconds: 5n, nanos: 1 },
      { seconds: 5n },
      null,
    ]);
  }
  if (f.fieldKind === "message") return pick(r, [{ $typeName: "other.Type" }, "x", null]);
  if (isLong(f.scalar)) return pick(r, [1.5, 12, -0, "00012", "12", "abc", " 0 ", "", "-0", "0x10", 2n ** 64n, -1n, undefined]);
  if (f.scalar === ScalarType.BYTES) return pick(r, [[1, 2], "AQID", undefined, Buffer.from("hi")]);
  return pick(r, [undefined, null, "1", 1]);
}

/** `m` with a few fields (here and nested) replaced by {@link oddValue}s. */
function mangle(m: Message, schema: DescMessage, r: Rng): Message {
  const raw = m as unknown as Record<string, unknown>;
  for (const f of schema.fields) {
    const x = r();
    if (x < 0.1) {
      const v = oddValue(f, r);
      if (typeof v === "object" && v !== null && "oneof" in v) raw[f.oneof!.localName] = v.oneof;
      else if (f.oneof) raw[f.oneof.localName] = { case: f.localName, value: v };
      else raw[f.localName] = v;
    } else if (x < 0.4 && f.fieldKind === "message" && !f.oneof && raw[f.localName]) {
      mangle(raw[f.localName] as Message, f.message, r);
    }
  }
  return m;
}

/** Every message type the gateway reads or writes as JSON, nested ones included. */
function gatewayMessages(): DescMessage[] {
  const seen = new Set<DescMessage>();
  const visit = (m: DescMessage) => {
    if (seen.has(m)) return;
    seen.add(m);
    for (const f of m.fields) if (f.message) visit(f.message);
  };
  for (const m of exposedMethods()) {
    visit(m.method.input);
    visit(m.method.output);
  }
  return [...seen];
}

const DIFFERENTIAL_TYPES = [...gatewayMessages(), ...TEST_TYPES].map((m) => [m.typeName, m] as const);

const outcome = (f: () => string) => {
  try {
    return { text: f() };
  } catch (e) {
    return { error: (e as Error).message };
  }
};

describe("messageToJsonString", () => {
  it("writes the catalog answer as protobuf-es does", () => {
    const m = create(GetProductResponseSchema, { product: { id: "p1", name: "Bench product", price: { currencyCode: "EUR", amountMinor: 1999n }, active: true } });
    expect(messageToJsonString(GetProductResponseSchema, m)).toBe('{"product":{"id":"p1","name":"Bench product","price":{"currencyCode":"EUR","amountMinor":"1999"},"active":true}}');
    expect(messageToJsonString(GetProductResponseSchema, m)).toBe(toJsonString(GetProductResponseSchema, m));
  });

  it("writes enums, 64-bit integers, bytes, oneofs and Timestamps as protobuf-es does", () => {
    const kinds = testType("Kinds");
    const m = create(kinds, {
      i64: -9223372036854775808n,
      u64: 18446744073709551615n,
      i64Str: "9223372036854775807",
      data: new Uint8Array([0xfb, 0xff, 0x01]),
      color: 2,
      colors: [1, 99],
      at: { seconds: 1700000000n, nanos: 120000000 },
      times: [{ seconds: -62135596800n, nanos: 0 }, { seconds: 253402300799n, nanos: 999999999 }, { seconds: 0n, nanos: 1000 }],
      choice: { case: "blob", value: new Uint8Array([1]) },
      maybeI64: 0n,
    } as never);
    const text = messageToJsonString(kinds, m);
    expect(text).toBe(toJsonString(kinds, m));
    expect(JSON.parse(text)).toEqual({
      i64: "-9223372036854775808",
      u64: "18446744073709551615",
      i64Str: "9223372036854775807",
      data: "+/8B",
      color: "COLOR_BLUE",
      colors: ["COLOR_RED", 99],
      at: "2023-11-14T22:13:20.120Z",
      times: ["0001-01-01T00:00:00Z", "9999-12-31T23:59:59.999999999Z", "1970-01-01T00:00:00.000001Z"],
      blob: "AQ==",
      maybeI64: "0",
    });
  });

  it.each(DIFFERENTIAL_TYPES)("is byte-identical to toJsonString for random %s messages", (_name, schema) => {
    const r = rng(0x15);
    for (let i = 0; i < 300; i++) {
      const m = randomMessage(schema, r, true);
      if (r() < 0.3) mangle(m, schema, r);
      expect(outcome(() => messageToJsonString(schema, m))).toEqual(outcome(() => toJsonString(schema, m)));
    }
  });

  it("gives protobuf-es' answer for values that do not fit their field", () => {
    const schema: DescMessage = GetProductResponseSchema;
    const product = { $typeName: "catalog.v1.Product" };
    const bad: unknown[] = [
      { $typeName: schema.typeName, product: { ...product, id: 7 } },
      { $typeName: schema.typeName, product: { ...product, id: "p", price: { $typeName: "common.v1.Money", amountMinor: 1.5 } } },
      { $typeName: schema.typeName, product: { ...product, active: "yes" } },
      { $typeName: schema.typeName, product: { $typeName: "other.Product" } },
      { $typeName: schema.typeName, product: null },
      { $typeName: "other.Response" },
      undefined,
    ];
    for (const m of bad) expect(outcome(() => messageToJsonString(schema, m as Message))).toEqual(outcome(() => toJsonString(schema, m as Message)));
  });

  it("gives protobuf-es' answer for odd enums, 64-bit integers, bytes, oneofs and Timestamps", () => {
    const kinds = testType("Kinds");
    const ts = (seconds: unknown, nanos: unknown) => ({ $typeName: TimestampSchema.typeName, seconds, nanos });
    const odd: Array<Record<string, unknown>> = [
      // jstype = JS_STRING: protobuf-es parses the string first.
      { i64Str: "00012" },
      { i64Str: "0x10" },
      { i64Str: " 12" },
      { i64Str: "abc" },
      { i64Str: "9223372036854775808" },
      { u64Str: "-1" },
      { u64Str: "18446744073709551615" },
      { i64: "00012" },
      { i64: 1.5 },
      { i64: 2n ** 64n },
      { color: 1.5 },
      { color: "COLOR_RED" },
      { color: undefined },
      { colors: [Number.NaN] },
      { data: [1, 2] },
      { data: Buffer.from("hi") },
      { choice: { case: "text" } },
      { choice: { case: "inner" } },
      { choice: { case: "nope", value: 1 } },
      { choice: null },
      { other: { case: "note", value: "n" } },
      { at: ts(5, 0) },
      { at: ts(5n, 1.5) },
      { at: ts(-62135596801n, 0) },
      { at: ts(253402300800n, 0) },
      { at: ts(0n, -1) },
      { at: ts(0n, 1_000_000_000) },
    ];
    for (const fields of odd) {
      const m = Object.assign(create(kinds), fields);
      expect(outcome(() => messageToJsonString(kinds, m))).toEqual(outcome(() => toJsonString(kinds, m)));
    }
  });
});

// ---------------------------------------------------------------------------------------------
// Mutated JSON input.

// Strings and numbers protobuf-es accepts or refuses for 64-bit fields in ways worth mirroring.
const LONG_JSON: JsonValue[] = [
  "1e3", 1e3, "0x10", " 12", "12 ", "+5", "", "-0", "007", "1.0", 1.5, -0, 9007199254740993, 2 ** 63, -(2 ** 63), 2 ** 64, 1e21,
  "9223372036854775807", "9223372036854775808", "-9223372036854775808", "-9223372036854775809", "18446744073709551615",
  "18446744073709551616", "-1", "1_000", "١٢", true,
];
const ENUM_JSON: JsonValue[] = [99, -1, 2147483647, 2147483648, -2147483649, 1.5, -0, "NOPE", "color_red", "1", "", true, [1]];
const BYTES_JSON: JsonValue[] = ["QUJD=", "QQ", "Q", "QQ=", "QQ==QQ==", "!!", "AQID====", "A===", "-_-_", "+/+/", "====", "QU JD\n", "\tQUJD\r", 5, "ü"];
const TIMESTAMP_JSON: JsonValue[] = [
  "1970-01-01T00:00:00Z", "1970-01-01T00:00:00.5Z", "1970-01-01T00:00:00.123456789Z", "1970-01-01T00:00:00.1234567890Z",
  "1970-01-01T00:00:00.Z", "1969-12-31T23:59:59.999999999Z", "2024-02-29T12:00:00Z", "2023-02-29T12:00:00Z", "2024-02-30T00:00:00Z",
  "2024-04-31T00:00:00Z", "2024-02-29T24:00:00Z", "2024-01-01T00:00:60Z", "2024-13-01T00:00:00Z", "2024-00-10T00:00:00Z",
  "0001-01-01T00:00:00Z", "0000-12-31T23:59:59Z", "9999-12-31T23:59:59.999999999Z", "9999-12-31T23:59:59-01:00",
  "10000-01-01T00:00:00Z", "0001-01-01T00:30:00+01:00", "0001-01-01T00:30:00-01:00", "2024-01-01t00:00:00z",
  "2024-01-01T00:00:00+0100", "2024-01-01T00:00:00+01:00", "2024-01-01T00:00:00.000000001+05:30", "2024-01-01T00:00:00+24:00",
  "2024-01-01T00:00:00+99:99", "2024-01-01 00:00:00Z", " 2024-01-01T00:00:00Z", "2024-01-01T00:00:00.000Z", 1700000000, {},
];

/** A JSON value protobuf-es accepts for field `f` (one list item for a list). */
function sampleJson(f: DescField): JsonValue {
  if (f.message) return f.message.typeName === TimestampSchema.typeName ? "1970-01-01T00:00:00Z" : {};
  if (f.enum) return f.enum.values[0].name;
  if (isLong(f.scalar)) return "5";
  if (f.scalar === ScalarType.BYTES) return "AQ==";
  if (f.scalar === ScalarType.BOOL) return true;
  if (f.scalar === ScalarType.STRING) return "x";
  return 1;
}

/** Whether `f` holds a kind the codec mirrors by hand: Timestamps, enums, 64-bit integers, bytes. */
function isTricky(f: DescField): boolean {
  return f.message?.typeName === TimestampSchema.typeName || f.enum !== undefined || isLong(f.scalar) || f.scalar === ScalarType.BYTES;
}

/** Tricky JSON for a value (or list item) `v` of an {@link isTricky} field. */
function trickyJson(f: DescField, v: JsonValue, r: Rng): JsonValue {
  if (f.message) return pick(r, TIMESTAMP_JSON);
  if (f.enum) return r() < 0.3 ? pick(r, f.enum.values).number : pick(r, ENUM_JSON);
  if (isLong(f.scalar)) return pick(r, LONG_JSON);
  if (typeof v === "string" && r() < 0.5) {
    // URL-safe, unpadded or space-broken forms of a valid value.
    return pick(r, [v.replace(/\+/g, "-").replace(/\//g, "_"), v.replace(/=+$/, ""), v.replace(/=+$/, "").replace(/\+/g, "-"), v.split("").join(" ")]);
  }
  return pick(r, BYTES_JSON);
}

/**
 * Variations of a valid JSON input: proto names, nulls, numbers as strings, wrong types, tricky
 * values of the hand-mirrored kinds, unknown and repeated keys, two members of a oneof. `rate`
 * is the share of keys changed: low rates keep most inputs valid, so one change decides.
 */
function mutate(json: JsonValue, schema: DescMessage, r: Rng, rate: number): JsonValue {
  if (schema.typeName === TimestampSchema.typeName && r() < 0.5) return pick(r, TIMESTAMP_JSON);
  if (typeof json !== "object" || json === null || Array.isArray(json)) return json;
  const out: Record<string, JsonValue> = {};
  for (const [k, v] of Object.entries(json)) {
    const f = schema.fields.find((x) => x.jsonName === k);
    // 0.5: no change here (nested messages are still visited).
    const x = r() < rate ? r() : 0.5;
    const key = f && x < 0.2 ? f.name : k;
    if (x < 0.05) out[key] = null;
    else if (x < 0.1) out[key] = typeof v === "number" ? String(v) : typeof v === "string" ? 7 : "x";
    else if (x < 0.13) out[key] = typeof v === "number" ? v + 0.5 : [v];
    else if (x < 0.16 && typeof v === "string") out[key] = v + "\ud83d";
    else if (f && x < 0.45 && isTricky(f)) out[key] = Array.isArray(v) ? v.map((i) => (r() < 0.4 ? trickyJson(f, i, r) : i)) : trickyJson(f, v, r);
    else if (f?.message && v && typeof v === "object" && !Array.isArray(v)) out[key] = mutate(v, f.message, r, rate);
    else if (f?.message && Array.isArray(v)) out[key] = v.map((i) => mutate(i, f.message!, r, rate));
    else out[key] = v;
    if (f && x > 0.97) out[f.name === key ? f.jsonName : f.name] = v;
    // A second member of the same oneof: refused, unless it is a scalar given as null.
    if (f?.oneof && r() < 0.15 * rate) {
      const other = pick(r, f.oneof.fields.filter((o) => o !== f));
      if (other) out[other.jsonName] = r() < 0.3 ? null : sampleJson(other);
    }
  }
  if (r() < 0.05 * rate) out.unknownField = 1;
  if (r() < 0.03 * rate) return [out];
  return out;
}

const readOutcome = (schema: DescMessage, f: () => Message) => {
  try {
    return { message: toJson(schema, f()) };
  } catch (e) {
    return { error: (e as Error).message };
  }
};

describe("messageFromJsonValue", () => {
  it.each(DIFFERENTIAL_TYPES)("builds what fromJson builds for %s input, or fails as it does", (_name, schema) => {
    const r = rng(0x16);
    for (let i = 0; i < 300; i++) {
      let valid: JsonValue;
      try {
        valid = toJson(schema, randomMessage(schema, r, false));
      } catch {
        continue; // e.g. a required field left unset: not a valid input to start from
      }
      const json = mutate(valid, schema, r, pick(r, [0.05, 0.2, 1]));
      const ours = readOutcome(schema, () => messageFromJsonValue(schema, json));
      const theirs = readOutcome(schema, () => fromJson(schema, json, { ignoreUnknownFields: false }));
      expect(ours).toEqual(theirs);
      if ("message" in ours) {
        const a = messageFromJsonValue(schema, json);
        const b = fromJson(schema, json, { ignoreUnknownFields: false });
        expect(equals(schema, a, b)).toBe(true);
        expect(a).toStrictEqual(b);
      }
    }
  });

  it("reads enums, 64-bit integers, bytes, oneofs and Timestamps as fromJson does", () => {
    const kinds = testType("Kinds");
    const json = {
      i64: "-9223372036854775808",
      u64: 18446744073709551615n.toString(),
      s64: -7,
      i64_str: "007",
      data: "-_8B",
      chunks: ["+/8", "QU JD"],
      color: "COLOR_RED",
      colors: [2, 99, "COLOR_UNSPECIFIED"],
      at: "2024-01-01T00:00:00.5+01:00",
      hue: 7,
      note: "n",
      maybeColor: 0,
    };
    const ours = messageFromJsonValue(kinds, json);
    expect(ours).toStrictEqual(fromJson(kinds, json));
    expect(ours).toMatchObject({
      i64: -9223372036854775808n,
      u64: 18446744073709551615n,
      s64: -7n,
      i64Str: "007",
      data: new Uint8Array([0xfb, 0xff, 0x01]),
      colors: [2, 99, 0],
      at: { seconds: 1704063600n, nanos: 500000000 },
      choice: { case: "hue", value: 7 },
      other: { case: "note", value: "n" },
      maybeColor: 0,
    });
  });

  it("keeps fromJson's errors for input it refuses", () => {
    const kinds = testType("Kinds");
    const bad: JsonValue[] = [
      { i64: "9223372036854775808" },
      { u64: -1 },
      { i64: "1e3" },
      { i64: 1.5 },
      { color: "COLOR_GREEN" },
      { color: 2147483648 },
      { data: "!!" },
      { at: "0000-12-31T23:59:59Z" },
      { at: "2024-01-01T00:00:00.1234567890Z" },
      { text: "a", big: "1" },
      { memo: "m", note: "x" },
    ];
    for (const json of bad) {
      const theirs = readOutcome(kinds, () => fromJson(kinds, json));
      expect(theirs).toHaveProperty("error");
      expect(readOutcome(kinds, () => messageFromJsonValue(kinds, json))).toEqual(theirs);
    }
  });
});

// ---------------------------------------------------------------------------------------------
// What compiles.

/** Whether `m` or a message type it contains has a map field. */
function hasMap(m: DescMessage, seen = new Set<DescMessage>()): boolean {
  if (seen.has(m)) return false;
  seen.add(m);
  return m.fields.some((f) => f.fieldKind === "map" || (f.message !== undefined && hasMap(f.message, seen)));
}

describe("jsonCodecCoverage", () => {
  it("compiles every message type of the gateway's public services except those with maps", () => {
    const all = gatewayMessages();
    const compiled = all.filter((m) => jsonCodecCoverage(m).write && jsonCodecCoverage(m).read).map((m) => m.typeName);
    expect(compiled).toEqual(all.filter((m) => !hasMap(m)).map((m) => m.typeName));
    // The types with enums, int64 and Timestamps that went to protobuf-es before.
    expect(compiled).toEqual(
      expect.arrayContaining([
        "common.v1.Money",
        "google.protobuf.Timestamp",
        "inventory.v1.Stock",
        "inventory.v1.GetStockResponse",
        "payments.v1.Payment",
        "payments.v1.GetPaymentResponse",
        "orders.v1.Order",
        "orders.v1.CreateOrderRequest",
        "orders.v1.CreateOrderResponse",
        "orders.v1.ListOrdersResponse",
        "notifications.v1.Notification",
        "notifications.v1.ListNotificationsResponse",
      ]),
    );
    expect(all.filter((m) => hasMap(m)).map((m) => m.typeName)).toEqual([]);
  });

  it.each(DIFFERENTIAL_TYPES.filter(([, m]) => jsonCodecCoverage(m).write && jsonCodecCoverage(m).read))(
    "reads and writes valid %s messages without falling back to protobuf-es",
    (_name, schema) => {
      const r = rng(0x17);
      let checked = 0;
      for (let i = 0; i < 100; i++) {
        const m = randomMessage(schema, r, false);
        const json = toJson(schema, m);
        // The reader leaves strings with surrogates (even valid pairs) to protobuf-es' UTF-16 check.
        if (/[\ud800-\udfff]|\\u[dD][89a-fA-F]/.test(JSON.stringify(json))) continue;
        jest.mocked(fromJson).mockClear();
        jest.mocked(toJsonString).mockClear();
        expect(messageToJsonString(schema, m)).toBe(JSON.stringify(json));
        expect(messageFromJsonValue(schema, json)).toStrictEqual(fromJson(schema, json));
        expect(jest.mocked(toJsonString)).not.toHaveBeenCalled();
        expect(jest.mocked(fromJson)).toHaveBeenCalledTimes(1); // the oracle call above
        checked++;
      }
      expect(checked).toBeGreaterThan(50);
    },
  );

  it("compiles oneofs, bytes and every 64-bit kind, and leaves maps, other well-known types, closed enums and required fields to protobuf-es", () => {
    const coverage = Object.fromEntries(TEST_TYPES.map((m) => [m.name, jsonCodecCoverage(m)]));
    expect(coverage).toEqual({
      Kinds: { write: true, read: true },
      Inner: { write: true, read: true },
      WithMap: { write: false, read: false },
      WithDuration: { write: false, read: false },
      // protobuf-es writes a closed enum as an open one; it refuses unknown numbers on input.
      Legacy: { write: true, read: false },
      Optional2: { write: true, read: true },
      Required: { write: false, read: false },
    });
  });
});
