/**
 * Round trip of every message type generated into gen/: a fully populated
 * instance must survive the binary and the JSON encoding unchanged.
 *
 * The samples are built from the descriptors, so a new .proto file is covered
 * as soon as it is generated, without touching this test.
 */
import { readdirSync } from "node:fs";
import { join, relative } from "node:path";
import {
  type DescEnum,
  type DescField,
  type DescFile,
  type DescMessage,
  type Message,
  type Registry,
  ScalarType,
  create,
  createRegistry,
  equals,
  fromBinary,
  fromJson,
  fromJsonString,
  isFieldSet,
  toBinary,
  toJson,
  toJsonString,
} from "@bufbuild/protobuf";
import { DurationSchema, TimestampSchema, anyPack, anyUnpack } from "@bufbuild/protobuf/wkt";
import { MoneySchema } from "../../gen/common/v1/money_pb.js";
import { EventEnvelopeSchema } from "../../gen/meshwork/v1/event_pb.js";

const GEN_DIR = join(__dirname, "..", "..", "gen");

/** Nested message fields deeper than this are left unset (guards against recursive types). */
const MAX_DEPTH = 6;

/** Every *_pb.ts file under gen/, loaded, with its file descriptor. */
function loadGeneratedFiles(): { path: string; file: DescFile }[] {
  const found: { path: string; file: DescFile }[] = [];
  const walk = (dir: string): void => {
    for (const entry of readdirSync(dir, { withFileTypes: true })) {
      const full = join(dir, entry.name);
      if (entry.isDirectory()) walk(full);
      else if (entry.name.endsWith("_pb.ts")) {
        // eslint-disable-next-line @typescript-eslint/no-require-imports
        const mod = require(full) as Record<string, unknown>;
        const files = Object.values(mod).filter(
          (v): v is DescFile => typeof v === "object" && v !== null && (v as { kind?: unknown }).kind === "file",
        );
        if (files.length !== 1) throw new Error(`${full}: expected exactly one GenFile export, found ${files.length}`);
        found.push({ path: relative(GEN_DIR, full), file: files[0] });
      }
    }
  };
  walk(GEN_DIR);
  return found.sort((a, b) => a.path.localeCompare(b.path));
}

/** All messages of a file, nested ones included (map entries are not messages of their own). */
function allMessages(file: DescFile): DescMessage[] {
  const out: DescMessage[] = [];
  const visit = (m: DescMessage): void => {
    out.push(m);
    m.nestedMessages.forEach(visit);
  };
  file.messages.forEach(visit);
  return out;
}

const generated = loadGeneratedFiles();
const registry: Registry = createRegistry(...generated.map((g) => g.file));
const messages = generated.flatMap((g) => allMessages(g.file));

function scalarSample(type: ScalarType, longAsString: boolean, name: string): unknown {
  switch (type) {
    case ScalarType.STRING:
      return `${name}-sample ✓`;
    case ScalarType.BYTES:
      return new Uint8Array([0, 1, 254, 255]);
    case ScalarType.BOOL:
      return true;
    case ScalarType.DOUBLE:
      return 2.5;
    case ScalarType.FLOAT:
      return 1.5; // exactly representable in 32 bits
    case ScalarType.INT32:
    case ScalarType.SINT32:
    case ScalarType.SFIXED32:
      return -7;
    case ScalarType.UINT32:
    case ScalarType.FIXED32:
      return 7;
    case ScalarType.INT64:
    case ScalarType.SINT64:
    case ScalarType.SFIXED64:
      return longAsString ? "-9007199254740993" : -9007199254740993n; // beyond 2^53 on purpose
    case ScalarType.UINT64:
    case ScalarType.FIXED64:
      return longAsString ? "18446744073709551615" : 18446744073709551615n;
  }
}

/** Map keys are object property names in protobuf-es: strings for every key type. */
function mapKeySample(type: ScalarType): string {
  switch (type) {
    case ScalarType.STRING:
      return "key-1";
    case ScalarType.BOOL:
      return "true";
    default:
      return "3";
  }
}

/** The second value of an enum: non-zero, so it is never the default. */
function enumSample(e: DescEnum): number {
  return e.values[e.values.length > 1 ? 1 : 0].number;
}

/** Samples for well-known types whose JSON form is special. */
function wktSample(desc: DescMessage): Message | undefined {
  switch (desc.typeName) {
    case "google.protobuf.Timestamp":
      return create(TimestampSchema, { seconds: 1_700_000_000n, nanos: 123_000_000 });
    case "google.protobuf.Duration":
      return create(DurationSchema, { seconds: 90n, nanos: 500_000_000 });
    case "google.protobuf.Any":
      return anyPack(MoneySchema, create(MoneySchema, { currencyCode: "EUR", amountMinor: 1999n }));
    default:
      if (desc.typeName.startsWith("google.protobuf.")) {
        throw new Error(`no sample for well-known type ${desc.typeName}: add one to wktSample()`);
      }
      return undefined;
  }
}

/**
 * A message with every field set to a non-default value. `variant` selects the
 * case of each oneof (variant modulo the number of cases).
 */
function populate(desc: DescMessage, variant = 0, depth = 0): Message {
  const wkt = wktSample(desc);
  if (wkt) return wkt;
  const init: Record<string, unknown> = {};
  const chosen = new Set<DescField>(desc.oneofs.map((o) => o.fields[variant % o.fields.length]));
  for (const field of desc.fields) {
    if (field.oneof && !chosen.has(field)) continue;
    const value = sampleFor(field, depth);
    if (value === undefined) continue;
    if (field.oneof) init[field.oneof.localName] = { case: field.localName, value };
    else init[field.localName] = value;
  }
  return create(desc, init as never);
}

function sampleFor(field: DescField, depth: number): unknown {
  const nested = (m: DescMessage): Message | undefined => (depth < MAX_DEPTH ? populate(m, 0, depth + 1) : undefined);
  switch (field.fieldKind) {
    case "scalar":
      return scalarSample(field.scalar, field.longAsString, field.name);
    case "enum":
      return enumSample(field.enum);
    case "message":
      return nested(field.message);
    case "list": {
      const one = (): unknown =>
        field.listKind === "scalar"
          ? scalarSample(field.scalar, field.longAsString, field.name)
          : field.listKind === "enum"
            ? enumSample(field.enum)
            : nested(field.message);
      const a = one();
      return a === undefined ? undefined : [a, one()];
    }
    case "map": {
      const v =
        field.mapKind === "scalar"
          ? scalarSample(field.scalar, false, field.name)
          : field.mapKind === "enum"
            ? enumSample(field.enum)
            : nested(field.message);
      return v === undefined ? undefined : { [mapKeySample(field.mapKey)]: v };
    }
  }
}

/** One sample per oneof case, so every field of every message is exercised. */
function samplesOf(desc: DescMessage): Message[] {
  const variants = Math.max(1, ...desc.oneofs.map((o) => o.fields.length));
  return Array.from({ length: variants }, (_, i) => populate(desc, i));
}

describe("generated code", () => {
  test("covers the shop, the mesh and the vendored gRPC contracts", () => {
    const paths = generated.map((g) => g.path.replace(/\\/g, "/"));
    expect(paths).toEqual(
      expect.arrayContaining([
        "catalog/v1/catalog_pb.ts",
        "common/v1/money_pb.ts",
        "grpc/health/v1/health_pb.ts",
        "grpc/reflection/v1/reflection_pb.ts",
        "grpc/reflection/v1alpha/reflection_pb.ts",
        "inventory/v1/events_pb.ts",
        "inventory/v1/inventory_pb.ts",
        "meshwork/v1/errors_pb.ts",
        "meshwork/v1/event_pb.ts",
        "meshwork/v1/options_pb.ts",
        "notifications/v1/notifications_pb.ts",
        "orders/v1/events_pb.ts",
        "orders/v1/orders_pb.ts",
        "payments/v1/events_pb.ts",
        "payments/v1/payments_pb.ts",
      ]),
    );
    expect(generated.filter((g) => allMessages(g.file).length === 0).map((g) => g.path)).toEqual([]);
    // 89 message types when this was written; the floor keeps the test from
    // passing on an empty or half-loaded gen/.
    expect(messages.length).toBeGreaterThanOrEqual(85);
    expect(new Set(messages.map((m) => m.typeName)).size).toBe(messages.length);
  });
});

describe.each(messages.map((m) => [m.typeName, m] as const))("%s", (_name, desc) => {
  const samples = samplesOf(desc);

  test("the sample sets every field (one oneof case per sample)", () => {
    const seen = new Set<string>();
    for (const sample of samples) {
      for (const field of desc.fields) {
        if (isFieldSet(sample, field)) seen.add(field.name);
      }
    }
    expect([...seen].sort()).toEqual(desc.fields.map((f) => f.name).sort());
  });

  test("binary round trip", () => {
    for (const sample of samples) {
      const bytes = toBinary(desc, sample);
      if (desc.fields.length > 0) expect(bytes.length).toBeGreaterThan(0);
      const back = fromBinary(desc, bytes);
      expect(equals(desc, back, sample)).toBe(true);
      expect(back).toStrictEqual(sample);
    }
  });

  test("JSON round trip", () => {
    for (const sample of samples) {
      const back = fromJson(desc, toJson(desc, sample, { registry }), { registry });
      expect(equals(desc, back, sample)).toBe(true);
      expect(back).toStrictEqual(sample);

      const viaString = fromJsonString(desc, toJsonString(desc, sample, { registry }), { registry });
      expect(equals(desc, viaString, sample)).toBe(true);
      expect(viaString).toStrictEqual(sample);
    }
  });
});

describe("meshwork.v1.EventEnvelope", () => {
  const events = generated.filter((g) => /\/events_pb\.ts$/.test(g.path.replace(/\\/g, "/"))).flatMap((g) => allMessages(g.file));

  test("finds the domain events", () => {
    expect(events.map((e) => e.typeName)).toEqual(
      expect.arrayContaining([
        "orders.v1.OrderPlaced",
        "orders.v1.OrderConfirmed",
        "orders.v1.OrderCancelled",
        "payments.v1.PaymentAuthorized",
        "payments.v1.PaymentCaptured",
        "payments.v1.PaymentRefunded",
        "payments.v1.PaymentVoided",
        "inventory.v1.StockLow",
        "inventory.v1.ReservationExpired",
      ]),
    );
  });

  test.each(events.map((e) => [e.typeName, e] as const))("carries %s through binary and JSON", (typeName, desc) => {
    const payload = populate(desc);
    const envelope = create(EventEnvelopeSchema, {
      id: "0b8e4c52-2a4e-4d5e-9a38-5b0f1c2d3e4f",
      type: typeName,
      time: create(TimestampSchema, { seconds: 1_700_000_000n }),
      producer: typeName.split(".")[0],
      subject: "subject-1",
      traceparent: "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
      tracestate: "vendor=value",
      payload: anyPack(desc, payload),
    });
    const fromWire = fromBinary(EventEnvelopeSchema, toBinary(EventEnvelopeSchema, envelope));
    const fromText = fromJsonString(EventEnvelopeSchema, toJsonString(EventEnvelopeSchema, envelope, { registry }), { registry });
    for (const back of [fromWire, fromText]) {
      expect(back).toStrictEqual(envelope);
      expect(back.payload?.typeUrl).toBe(`type.googleapis.com/${back.type}`);
      const unpacked = anyUnpack(back.payload!, registry);
      expect(unpacked && equals(desc, unpacked, payload)).toBe(true);
    }
  });
});
