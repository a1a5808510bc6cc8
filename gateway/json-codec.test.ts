import { create, equals, fromJson, ScalarType, toJson, toJsonString, type DescField, type DescMessage, type JsonValue, type Message } from "@bufbuild/protobuf";
import { GetProductResponseSchema } from "../gen/catalog/v1/catalog_pb.js";
import { messageFromJsonValue, messageToJsonString } from "./json-codec.js";
import { prng as rng } from "../mesh/testing/prng.js";
import { exposedMethods } from "./methods.js";


const STRINGS = ["", "p1", "Bench product", 'quote " and \\ backslash', "line\nbreak\u0000nul", "ünïcödé ☕ 𝄞", "\ud800 lone surrogate", "</script>"];
const NUMBERS = [0, -0, 1, -1, 2147483647, -2147483648, 0.5, 1e21, Number.NaN, Number.POSITIVE_INFINITY, Number.NEGATIVE_INFINITY];
const LONGS = [0n, 1n, -1n, 9007199254740993n, -9223372036854775808n, 18446744073709551615n];

function scalar(t: ScalarType, r: () => number): unknown {
  const pick = <T>(xs: T[]) => xs[Math.floor(r() * xs.length)];
  switch (t) {
    case ScalarType.STRING:
      return pick(STRINGS);
    case ScalarType.BOOL:
      return r() < 0.5;
    case ScalarType.BYTES:
      return r() < 0.3 ? new Uint8Array(0) : Uint8Array.from({ length: Math.floor(r() * 7) + 1 }, () => Math.floor(r() * 256));
    case ScalarType.DOUBLE:
    case ScalarType.FLOAT:
      return pick(NUMBERS);
    case ScalarType.INT64:
    case ScalarType.SINT64:
    case ScalarType.SFIXED64:
      return pick(LONGS.filter((x) => x >= -9223372036854775808n && x <= 9223372036854775807n));
    case ScalarType.UINT64:
    case ScalarType.FIXED64:
      return pick(LONGS.filter((x) => x >= 0n));
    case ScalarType.UINT32:
    case ScalarType.FIXED32:
      return pick([0, 1, 4294967295]);
    default:
      return pick([0, 1, -1, 2147483647, -2147483648]);
  }
}

/** A random message of `schema`: every field set or left at its zero value, lists empty or not. */
function randomMessage(schema: DescMessage, r: () => number, depth = 0): Message {
  const init: Record<string, unknown> = {};
  const value = (f: DescField, kind: string): unknown => {
    if (kind === "message") return depth < 3 ? randomMessage(f.message!, r, depth + 1) : create(f.message!);
    if (kind === "enum") return r() < 0.15 ? 99 : f.enum!.values[Math.floor(r() * f.enum!.values.length)].number;
    return scalar(f.scalar!, r);
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

  it.each(gatewayMessages().map((m) => [m.typeName, m] as const))("is byte-identical to toJsonString for random %s messages", (_name, schema) => {
    const r = rng(0x15);
    for (let i = 0; i < 300; i++) {
      const m = randomMessage(schema, r);
      expect(outcome(() => messageToJsonString(schema, m))).toEqual(outcome(() => toJsonString(schema, m)));
    }
  });

  it("gives protobuf-es' answer for values that do not fit their field", () => {
    const schema: DescMessage = GetProductResponseSchema;
    const bad: unknown[] = [
      { $typeName: schema.typeName, product: { $typeName: "catalog.v1.Product", id: 7 } },
      { $typeName: schema.typeName, product: { $typeName: "catalog.v1.Product", id: "p", price: { $typeName: "common.v1.Money", amountMinor: 1.5 } } },
      { $typeName: schema.typeName, product: { $typeName: "catalog.v1.Product", active: "yes" } },
      { $typeName: schema.typeName, product: null },
      undefined,
    ];
    for (const m of bad) expect(outcome(() => messageToJsonString(schema, m as Message))).toEqual(outcome(() => toJsonString(schema, m as Message)));
  });
});

/** Variations of a valid JSON input: proto names, nulls, numbers as strings, wrong types, unknown and repeated keys. */
function mutate(json: JsonValue, schema: DescMessage, r: () => number): JsonValue {
  if (typeof json !== "object" || json === null || Array.isArray(json)) return json;
  const out: Record<string, JsonValue> = {};
  for (const [k, v] of Object.entries(json)) {
    const f = schema.fields.find((x) => x.jsonName === k);
    const x = r();
    const key = f && x < 0.2 ? f.name : k;
    if (x < 0.05) out[key] = null;
    else if (x < 0.1) out[key] = typeof v === "number" ? String(v) : typeof v === "string" ? 7 : "x";
    else if (x < 0.13) out[key] = typeof v === "number" ? v + 0.5 : [v];
    else if (x < 0.16 && typeof v === "string") out[key] = v + "\ud83d";
    else if (f?.message && v && typeof v === "object" && !Array.isArray(v)) out[key] = mutate(v, f.message, r);
    else if (f?.message && Array.isArray(v)) out[key] = v.map((i) => mutate(i, f.message!, r));
    else out[key] = v;
    if (f && x > 0.97) out[f.name === key ? f.jsonName : f.name] = v;
  }
  if (r() < 0.05) out.unknownField = 1;
  if (r() < 0.03) return [out];
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
  it.each(gatewayMessages().map((m) => [m.typeName, m] as const))("builds what fromJson builds for %s input, or fails as it does", (_name, schema) => {
    const r = rng(0x16);
    for (let i = 0; i < 300; i++) {
      let valid: JsonValue;
      try {
        valid = toJson(schema, randomMessage(schema, r));
      } catch {
        continue; // e.g. a random Timestamp out of range: not a valid input to start from
      }
      const json = mutate(valid, schema, r);
      const ours = readOutcome(schema, () => messageFromJsonValue(schema, json));
      const theirs = readOutcome(schema, () => fromJson(schema, json, { ignoreUnknownFields: false }));
      expect(ours).toEqual(theirs);
      if ("message" in ours) expect(equals(schema, messageFromJsonValue(schema, json), fromJson(schema, json, { ignoreUnknownFields: false }))).toBe(true);
    }
  });
});
