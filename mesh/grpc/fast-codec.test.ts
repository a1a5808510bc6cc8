import { create, createFileRegistry, fromBinary, ScalarType, toBinary, type DescField, type DescFile, type DescMessage, type Message } from "@bufbuild/protobuf";
import {
  FieldDescriptorProto_Label as Label,
  FieldDescriptorProto_Type as Type,
  FileDescriptorProtoSchema,
  file_google_protobuf_any,
  file_google_protobuf_duration,
  file_google_protobuf_struct,
  file_google_protobuf_timestamp,
  file_google_protobuf_wrappers,
  isWrapperDesc,
} from "@bufbuild/protobuf/wkt";
import { prng as rng } from "../testing/prng.js";
import { file_catalog_v1_catalog } from "../../gen/catalog/v1/catalog_pb.js";
import { file_common_v1_money } from "../../gen/common/v1/money_pb.js";
import { file_grpc_health_v1_health } from "../../gen/grpc/health/v1/health_pb.js";
import { file_grpc_reflection_v1_reflection } from "../../gen/grpc/reflection/v1/reflection_pb.js";
import { file_inventory_v1_events } from "../../gen/inventory/v1/events_pb.js";
import { file_inventory_v1_inventory } from "../../gen/inventory/v1/inventory_pb.js";
import { file_meshwork_v1_errors } from "../../gen/meshwork/v1/errors_pb.js";
import { file_meshwork_v1_event } from "../../gen/meshwork/v1/event_pb.js";
import { file_meshwork_v1_options } from "../../gen/meshwork/v1/options_pb.js";
import { file_notifications_v1_notifications } from "../../gen/notifications/v1/notifications_pb.js";
import { file_orders_v1_events } from "../../gen/orders/v1/events_pb.js";
import { file_orders_v1_orders } from "../../gen/orders/v1/orders_pb.js";
import { file_payments_v1_events } from "../../gen/payments/v1/events_pb.js";
import { file_payments_v1_payments } from "../../gen/payments/v1/payments_pb.js";
import { isFastMessage, messageCodec } from "./fast-codec.js";

/*
 * The compiled codec must be indistinguishable from protobuf-es: the same bytes from toBinary and
 * the same objects (own properties, their order and types) from fromBinary, for every message type
 * the shop uses, for a synthetic type with every scalar kind, and for the inputs it hands over to
 * protobuf-es (unknown fields, merges, bad values, truncated input).
 */

/** A proto3 file with every scalar type, optional/oneof/repeated/nested/recursive fields and a high field number. */
function allTypesFile(): DescFile {
  const scalars: [string, Type][] = [
    ["double", Type.DOUBLE],
    ["float", Type.FLOAT],
    ["int64", Type.INT64],
    ["uint64", Type.UINT64],
    ["int32", Type.INT32],
    ["fixed64", Type.FIXED64],
    ["fixed32", Type.FIXED32],
    ["bool", Type.BOOL],
    ["string", Type.STRING],
    ["bytes", Type.BYTES],
    ["uint32", Type.UINT32],
    ["sfixed32", Type.SFIXED32],
    ["sfixed64", Type.SFIXED64],
    ["sint32", Type.SINT32],
    ["sint64", Type.SINT64],
  ];
  const field = [
    ...scalars.map(([n, type], i) => ({ name: `s_${n}`, number: i + 1, type, label: Label.OPTIONAL, jsonName: `s${n}` })),
    ...scalars.map(([n, type], i) => ({ name: `r_${n}`, number: i + 20, type, label: Label.REPEATED, jsonName: `r${n}` })),
    { name: "color", number: 40, type: Type.ENUM, typeName: ".t.v1.Color", label: Label.OPTIONAL, jsonName: "color" },
    { name: "colors", number: 41, type: Type.ENUM, typeName: ".t.v1.Color", label: Label.REPEATED, jsonName: "colors" },
    { name: "child", number: 42, type: Type.MESSAGE, typeName: ".t.v1.All", label: Label.OPTIONAL, jsonName: "child" },
    { name: "children", number: 43, type: Type.MESSAGE, typeName: ".t.v1.All", label: Label.REPEATED, jsonName: "children" },
    { name: "opt_int32", number: 44, type: Type.INT32, label: Label.OPTIONAL, oneofIndex: 0, proto3Optional: true, jsonName: "optInt32" },
    { name: "choice_text", number: 45, type: Type.STRING, label: Label.OPTIONAL, oneofIndex: 1, jsonName: "choiceText" },
    { name: "choice_child", number: 46, type: Type.MESSAGE, typeName: ".t.v1.All", label: Label.OPTIONAL, oneofIndex: 1, jsonName: "choiceChild" },
    { name: "far", number: 1000, type: Type.STRING, label: Label.OPTIONAL, jsonName: "far" },
    { name: "int64_str", number: 47, type: Type.INT64, label: Label.OPTIONAL, jsonName: "int64Str", options: { jstype: 1 } },
  ];
  const fdp = create(FileDescriptorProtoSchema, {
    name: "t/v1/all.proto",
    package: "t.v1",
    syntax: "proto3",
    enumType: [{ name: "Color", value: [{ name: "COLOR_UNSPECIFIED", number: 0 }, { name: "COLOR_RED", number: 1 }, { name: "COLOR_NEG", number: -5 }] }],
    messageType: [{ name: "All", field, oneofDecl: [{ name: "_opt_int32" }, { name: "choice" }] }],
  });
  const reg = createFileRegistry(fdp, () => undefined);
  return reg.getFile("t/v1/all.proto")!;
}

const FILES: DescFile[] = [
  file_catalog_v1_catalog,
  file_common_v1_money,
  file_grpc_health_v1_health,
  file_grpc_reflection_v1_reflection,
  file_inventory_v1_events,
  file_inventory_v1_inventory,
  file_meshwork_v1_errors,
  file_meshwork_v1_event,
  file_meshwork_v1_options,
  file_notifications_v1_notifications,
  file_orders_v1_events,
  file_orders_v1_orders,
  file_payments_v1_events,
  file_payments_v1_payments,
  file_google_protobuf_any,
  file_google_protobuf_duration,
  file_google_protobuf_struct,
  file_google_protobuf_timestamp,
  file_google_protobuf_wrappers,
  allTypesFile(),
];

function messagesOf(files: DescFile[]): DescMessage[] {
  const out: DescMessage[] = [];
  const walk = (m: DescMessage) => {
    out.push(m);
    m.nestedMessages.forEach(walk);
  };
  for (const f of files) f.messages.forEach(walk);
  return out;
}


const STRINGS = ["", "a", "p1", "x".repeat(31), "y".repeat(32), "z".repeat(200), "é", "€uro", "😀 smile", "lone \ud800 surrogate", "ü".repeat(40), "\u0000nul"];

function randomScalar(r: () => number, t: ScalarType, longAsString: boolean): unknown {
  const pick = <T>(xs: T[]) => xs[Math.floor(r() * xs.length)];
  const long = (v: bigint) => (longAsString ? v.toString() : v);
  switch (t) {
    case ScalarType.STRING:
      return pick(STRINGS);
    case ScalarType.BYTES:
      return pick([new Uint8Array(0), new Uint8Array([1, 2, 3]), new Uint8Array(300).fill(7)]);
    case ScalarType.BOOL:
      return r() < 0.5;
    case ScalarType.DOUBLE:
      return pick([0, -0, 1.5, -1e300, Number.NaN, Number.POSITIVE_INFINITY, 1 / 3]);
    case ScalarType.FLOAT:
      return pick([0, 1.5, -2.25, Number.NEGATIVE_INFINITY, 3.4e38]);
    case ScalarType.INT32:
    case ScalarType.SFIXED32:
    case ScalarType.SINT32:
      return pick([0, 1, -1, 127, 128, 300, 2 ** 31 - 1, -(2 ** 31)]);
    case ScalarType.UINT32:
    case ScalarType.FIXED32:
      return pick([0, 1, 127, 128, 2 ** 32 - 1, 2 ** 31]);
    case ScalarType.INT64:
    case ScalarType.SFIXED64:
    case ScalarType.SINT64:
      return long(pick([0n, 1n, -1n, 1_700_000_000n, 2n ** 49n, 2n ** 63n - 1n, -(2n ** 63n)]));
    case ScalarType.UINT64:
    case ScalarType.FIXED64:
      return long(pick([0n, 1n, 1_700_000_000n, 2n ** 56n, 2n ** 64n - 1n]));
  }
}

function randomField(r: () => number, f: DescField, depth: number): unknown {
  switch (f.fieldKind) {
    case "scalar":
      return randomScalar(r, f.scalar, f.longAsString);
    case "enum":
      return r() < 0.2 ? 77 : f.enum.values[Math.floor(r() * f.enum.values.length)].number;
    case "message":
      if (isWrapperDesc(f.message) && !f.oneof) return randomScalar(r, (f.message.fields[0] as { scalar: ScalarType }).scalar, false);
      return depth < 3 ? randomInit(r, f.message, depth + 1) : undefined;
    case "list": {
      const n = Math.floor(r() * 4);
      const items: unknown[] = [];
      for (let i = 0; i < n; i++) {
        if (f.listKind === "scalar") items.push(randomScalar(r, f.scalar, f.longAsString));
        else if (f.listKind === "enum") items.push(f.enum.values[Math.floor(r() * f.enum.values.length)].number);
        else if (depth < 3) items.push(randomInit(r, f.message, depth + 1));
      }
      return items;
    }
    case "map": {
      const m: Record<string, unknown> = {};
      if (r() < 0.5 && f.mapKind === "scalar") m[String(randomScalar(r, f.mapKey, false))] = randomScalar(r, f.scalar, false);
      return m;
    }
  }
}

function randomInit(r: () => number, desc: DescMessage, depth = 0): Record<string, unknown> {
  const init: Record<string, unknown> = {};
  // Struct-shaped fields are JSON objects, not messages: leave them empty.
  if (desc.typeName.startsWith("google.protobuf.") && ["Struct", "Value", "ListValue"].some((n) => desc.typeName.endsWith(n))) return init;
  for (const member of desc.members) {
    if (r() < 0.3) continue;
    if (member.kind === "oneof") {
      const f = member.fields[Math.floor(r() * member.fields.length)];
      const value = randomField(r, f, depth);
      if (value !== undefined) init[member.localName] = { case: f.localName, value };
    } else if (!member.message || !["google.protobuf.Struct", "google.protobuf.Value", "google.protobuf.ListValue"].includes(member.message.typeName)) {
      const value = randomField(r, member, depth);
      if (value !== undefined) init[member.localName] = value;
    }
  }
  return init;
}

/** JSON with key order kept and types spelled out, so that order and Buffer-vs-Uint8Array count. */
function canonical(v: unknown): string {
  return JSON.stringify(v, (_k, x: unknown) => {
    if (typeof x === "bigint") return `bigint:${x}`;
    if (x instanceof Uint8Array) return `${x.constructor.name}:${Buffer.from(x).toString("hex")}`;
    if (typeof x === "number" && !Number.isFinite(x)) return `number:${x}`;
    if (Object.is(x, -0)) return "number:-0";
    if (x === undefined) return "undefined";
    return x;
  });
}

function expectSameAsProtobufEs(desc: DescMessage, msg: Message): void {
  const codec = messageCodec(desc);
  const expected = Buffer.from(toBinary(desc, msg));
  const bytes = codec.serialize(msg);
  expect(bytes.toString("hex")).toBe(expected.toString("hex"));
  expect(canonical(codec.deserialize(Buffer.from(expected)))).toBe(canonical(fromBinary(desc, Buffer.from(expected))));
}

describe("fast codec", () => {
  const all = messagesOf(FILES);

  it("writes and reads every message type exactly as protobuf-es does", () => {
    const r = rng(42);
    let checked = 0;
    for (const desc of all) {
      expectSameAsProtobufEs(desc, create(desc));
      for (let i = 0; i < 40; i++) {
        expectSameAsProtobufEs(desc, create(desc, randomInit(r, desc) as never));
        checked++;
      }
    }
    expect(checked).toBe(all.length * 40);
  });

  it("writes a handler's plain object like the message create() makes of it", () => {
    const r = rng(7);
    const fast = all.filter(isFastMessage);
    expect(fast.length).toBeGreaterThan(all.length / 2);
    for (const desc of fast) {
      for (let i = 0; i < 20; i++) {
        const init = randomInit(r, desc);
        expect(messageCodec(desc).serialize(init as never).toString("hex")).toBe(Buffer.from(toBinary(desc, create(desc, init as never))).toString("hex"));
      }
    }
  });

  const All = messagesOf([allTypesFile()])[0];

  it("moves a nested message up when its length needs more than one byte", () => {
    const msg = create(All, { child: { sString: "x".repeat(300), child: { sBytes: new Uint8Array(20_000) } } } as never);
    expectSameAsProtobufEs(All, msg);
  });

  it("reads unpacked numeric lists and keeps unknown fields like protobuf-es", () => {
    const codec = messageCodec(All);
    // r_int32 (field 24) unpacked twice, then an unknown varint field 900.
    const bytes = Buffer.from([0xc0, 0x01, 0x05, 0xc0, 0x01, 0x06, 0xa0, 0x38, 0x01]);
    expect(canonical(codec.deserialize(bytes))).toBe(canonical(fromBinary(All, bytes)));
    expect((codec.deserialize(bytes) as unknown as { $unknown?: unknown[] }).$unknown).toHaveLength(1);
  });

  it("merges a repeated singular message like protobuf-es", () => {
    const a = toBinary(All, create(All, { child: { sInt32: 1 } } as never));
    const b = toBinary(All, create(All, { child: { sString: "b" } } as never));
    const both = Buffer.concat([a, b]);
    const decoded = messageCodec(All).deserialize(both) as unknown as { child: { sInt32: number; sString: string } };
    expect(canonical(decoded)).toBe(canonical(fromBinary(All, both)));
    expect(decoded.child.sInt32).toBe(1);
    expect(decoded.child.sString).toBe("b");
  });

  it("leaves errors to protobuf-es: values that do not fit and truncated input", () => {
    const codec = messageCodec(All);
    const bad = create(All);
    (bad as unknown as { sInt32: number }).sInt32 = 1.5;
    expect(() => codec.serialize(bad)).toThrow(/cannot encode field t\.v1\.All\.s_int32/);
    const good = Buffer.from(toBinary(All, create(All, { sString: "hello", sInt64: 5n } as never)));
    const truncated = good.subarray(0, good.length - 2);
    let expected: unknown;
    try {
      fromBinary(All, truncated);
    } catch (e) {
      expected = e;
    }
    expect(expected).toBeInstanceOf(Error);
    expect(() => codec.deserialize(truncated)).toThrow((expected as Error).message);
  });

  it("hands invalid UTF-8 to protobuf-es", () => {
    // s_string (field 9) with the bytes ff fe.
    const bytes = Buffer.from([0x4a, 0x02, 0xff, 0xfe]);
    const codec = messageCodec(All);
    let expected: string;
    try {
      expected = canonical(fromBinary(All, bytes));
    } catch (e) {
      expected = `throws ${(e as Error).message}`;
    }
    let actual: string;
    try {
      actual = canonical(codec.deserialize(bytes));
    } catch (e) {
      actual = `throws ${(e as Error).message}`;
    }
    expect(actual).toBe(expected);
  });
});
