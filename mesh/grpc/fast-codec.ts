import { create, fromBinary, isMessage, ScalarType, toBinary, type DescField, type DescMessage, type Message } from "@bufbuild/protobuf";
import { Edition, FeatureSet_FieldPresence, isWrapperDesc } from "@bufbuild/protobuf/wkt";
import { isScalarZeroValue } from "@bufbuild/protobuf/reflect";

/*
 * Binary (de)serialisation of protobuf-es messages for the gRPC data path, compiled once per
 * message type into plain closures. protobuf-es' toBinary/fromBinary walk a reflection wrapper per
 * message and encode strings through TextEncoder; on the hop bench that was ~10 % of the server's
 * CPU per call (plus garbage), where proto-loader's generated code costs a fraction.
 *
 * The output is byte-for-byte what toBinary writes (fields by number, proto3 implicit presence)
 * and decoding builds the same objects fromBinary does. Anything outside the common proto3 subset
 * is handed to protobuf-es itself, so the rare cases keep protobuf-es' exact behaviour, errors
 * included: message types with maps, groups, wrapper/Struct fields or another edition use
 * protobuf-es for the whole message; a value that does not fit its field, unknown fields, a
 * repeated singular message (merge), a wire type mismatch or suspicious UTF-8 makes that one
 * call fall back (the FALLBACK throw below).
 */

// protobuf-es' default recursion limit; deeper input goes to protobuf-es, which reports it.
const MAX_DEPTH = 100;
// Shorter strings are encoded/decoded in JavaScript: a native call costs more than the loop.
const SHORT_STRING = 32;

/** Thrown inside the codec to let protobuf-es handle the whole message; never escapes. */
const FALLBACK = { fallback: true };

// ---- writer: one growing scratch buffer; each message is copied out once at the end ----

let out = Buffer.allocUnsafe(16 * 1024);
let pos = 0;

function ensure(n: number): void {
  if (pos + n <= out.length) return;
  const bigger = Buffer.allocUnsafe(Math.max(out.length * 2, pos + n));
  out.copy(bigger, 0, 0, pos);
  out = bigger;
}

function varint32(v: number): void {
  // v is an unsigned 32-bit integer.
  ensure(5);
  while (v > 127) {
    out[pos++] = (v & 127) | 128;
    v >>>= 7;
  }
  out[pos++] = v;
}

function varintSize(v: number): number {
  return v < 0x80 ? 1 : v < 0x4000 ? 2 : v < 0x200000 ? 3 : v < 0x10000000 ? 4 : 5;
}

/** int32/enum: negative values are sign-extended to 10 bytes, as protobuf requires. */
function varintInt32(v: number): void {
  if (v >= 0) return varint32(v);
  varint64(BigInt(v));
}

function varint64(v: bigint): void {
  let n = BigInt.asUintN(64, v);
  if (n <= 0xffffffffn) return varint32(Number(n));
  ensure(10);
  while (n > 127n) {
    out[pos++] = Number(n & 127n) | 128;
    n >>= 7n;
  }
  out[pos++] = Number(n);
}

function writeString(s: string): void {
  const n = s.length;
  if (n < SHORT_STRING) {
    // At most 3 bytes per UTF-16 unit: the length fits one byte, patched below.
    ensure(1 + n * 3);
    const start = pos++;
    for (let i = 0; i < n; i++) {
      let c = s.charCodeAt(i);
      if (c < 0x80) out[pos++] = c;
      else if (c < 0x800) {
        out[pos++] = 0xc0 | (c >> 6);
        out[pos++] = 0x80 | (c & 63);
      } else {
        if (c >= 0xd800 && c <= 0xdfff) {
          const d = s.charCodeAt(i + 1);
          if (c <= 0xdbff && d >= 0xdc00 && d <= 0xdfff) {
            c = 0x10000 + ((c - 0xd800) << 10) + (d - 0xdc00);
            i++;
            out[pos++] = 0xf0 | (c >> 18);
            out[pos++] = 0x80 | ((c >> 12) & 63);
            out[pos++] = 0x80 | ((c >> 6) & 63);
            out[pos++] = 0x80 | (c & 63);
            continue;
          }
          c = 0xfffd; // a lone surrogate, as TextEncoder writes it
        }
        out[pos++] = 0xe0 | (c >> 12);
        out[pos++] = 0x80 | ((c >> 6) & 63);
        out[pos++] = 0x80 | (c & 63);
      }
    }
    out[start] = pos - start - 1;
    return;
  }
  const len = Buffer.byteLength(s, "utf8");
  varint32(len);
  ensure(len);
  pos += out.write(s, pos, len, "utf8");
}

function writeBytes(b: Uint8Array): void {
  varint32(b.byteLength);
  ensure(b.byteLength);
  out.set(b, pos);
  pos += b.byteLength;
}

/** Starts a length-delimited body: one byte reserved for its length. Returns where it starts. */
function beginDelimited(): number {
  ensure(1);
  return pos++;
}

/** Writes the length of the body begun at `start`, moving the body up if the length needs more than a byte. */
function endDelimited(start: number): void {
  const len = pos - start - 1;
  if (len < 128) {
    out[start] = len;
    return;
  }
  const extra = varintSize(len) - 1;
  ensure(extra);
  out.copyWithin(start + 1 + extra, start + 1, pos);
  const end = pos + extra;
  pos = start;
  varint32(len);
  pos = end;
}

// ---- reader: module state too; decoding never re-enters itself ----

let inp: Buffer = Buffer.alloc(0);
let rpos = 0;
let depth = 0;

function readVarint32(): number {
  let b = inp[rpos++];
  let v = b & 127;
  if (b < 128) return v;
  b = inp[rpos++];
  v |= (b & 127) << 7;
  if (b < 128) return v;
  b = inp[rpos++];
  v |= (b & 127) << 14;
  if (b < 128) return v;
  b = inp[rpos++];
  v |= (b & 127) << 21;
  if (b < 128) return v;
  b = inp[rpos++];
  v |= (b & 15) << 28;
  // Bytes 6–10 of a sign-extended negative int32 carry only the sign.
  for (let i = 0; b >= 128 && i < 5; i++) b = inp[rpos++];
  if (b >= 128 || b === undefined) throw FALLBACK;
  return v;
}

function readVarint64(): bigint {
  // Up to 7 bytes (49 bits) fit a double exactly: the usual case (ids, timestamps) stays off BigInt.
  let v = 0;
  let mul = 1;
  const start = rpos;
  for (let i = 0; i < 7; i++) {
    const b = inp[rpos++];
    if (b === undefined) throw FALLBACK;
    v += (b & 127) * mul;
    if (b < 128) return BigInt(v);
    mul *= 128;
  }
  rpos = start;
  let n = 0n;
  let shift = 0n;
  for (let i = 0; i < 10; i++) {
    const b = inp[rpos++];
    if (b === undefined) throw FALLBACK;
    n |= BigInt(b & 127) << shift;
    if (b < 128) return n;
    shift += 7n;
  }
  throw FALLBACK;
}

function readLength(): number {
  const len = readVarint32() >>> 0;
  if (rpos + len > inp.length) throw FALLBACK;
  return len;
}

function readString(): string {
  const len = readLength();
  const start = rpos;
  rpos += len;
  if (len < SHORT_STRING) {
    let s = "";
    for (let i = start; i < rpos; i++) {
      const c = inp[i];
      if (c >= 0x80) return checkedUtf8(start, rpos);
      s += String.fromCharCode(c);
    }
    return s;
  }
  return checkedUtf8(start, rpos);
}

function checkedUtf8(start: number, end: number): string {
  const s = inp.toString("utf8", start, end);
  // U+FFFD may stand for invalid input, which protobuf-es rejects in strict fields: let it decide.
  if (s.includes("\ufffd")) throw FALLBACK;
  return s;
}

// ---- per-type plans ----

type Value = unknown;
type Obj = Record<string, unknown>;

/** Writes one non-default value of a field, tag included. */
type FieldWriter = (v: Value) => void;
/** Reads one occurrence of a field (the tag is read) into `m`. */
type FieldReader = (m: Obj, wireType: number) => void;

interface Plan {
  /** Fields by number: presence check and writer. */
  writers: ((m: Obj) => void)[];
  readers: (FieldReader | undefined)[] | Map<number, FieldReader>;
  /** Builds the zero message as protobuf-es' create() does. */
  zero: () => Obj;
}

interface Codec {
  readonly desc: DescMessage;
  /** False when protobuf-es handles this type entirely. */
  readonly fast: boolean;
  plan?: Plan;
}

const codecs = new WeakMap<DescMessage, Codec>();

function codecOf(desc: DescMessage): Codec {
  let c = codecs.get(desc);
  if (!c) {
    c = { desc, fast: isFastType(desc) };
    codecs.set(desc, c);
  }
  return c;
}

function isFastType(desc: DescMessage): boolean {
  if (desc.file.edition !== Edition.EDITION_PROTO3) return false;
  for (const f of desc.fields) {
    if (f.fieldKind === "map" || (f as { delimitedEncoding?: boolean }).delimitedEncoding) return false;
    if (f.fieldKind === "message" || (f.fieldKind === "list" && f.listKind === "message")) {
      const m = f.message!;
      // Unboxed wrappers and JSON-shaped Struct fields are not messages on the object.
      if ((f.fieldKind === "message" && !f.oneof && isWrapperDesc(m)) || m.typeName === "google.protobuf.Struct") return false;
    }
  }
  return true;
}

const WIRE_VARINT = 0;
const WIRE_64 = 1;
const WIRE_LEN = 2;
const WIRE_32 = 5;

function wireTypeOf(t: ScalarType): number {
  switch (t) {
    case ScalarType.STRING:
    case ScalarType.BYTES:
      return WIRE_LEN;
    case ScalarType.DOUBLE:
    case ScalarType.FIXED64:
    case ScalarType.SFIXED64:
      return WIRE_64;
    case ScalarType.FLOAT:
    case ScalarType.FIXED32:
    case ScalarType.SFIXED32:
      return WIRE_32;
    default:
      return WIRE_VARINT;
  }
}

function tagOf(no: number, wireType: number): number {
  return ((no << 3) | wireType) >>> 0;
}

const FLOAT32_MAX = 3.4028234663852886e38;

function toInt64(v: Value, unsigned: boolean): bigint {
  let n: bigint;
  if (typeof v === "bigint") n = v;
  else if (typeof v === "string" || typeof v === "number") {
    try {
      n = BigInt(v);
    } catch {
      throw FALLBACK;
    }
  } else throw FALLBACK;
  if ((unsigned ? BigInt.asUintN(64, n) : BigInt.asIntN(64, n)) !== n) throw FALLBACK;
  return n;
}

/** Writes a scalar value without its tag; throws FALLBACK for a value protobuf-es would refuse. */
function scalarValueWriter(t: ScalarType): (v: Value) => void {
  switch (t) {
    case ScalarType.STRING:
      return (v) => {
        if (typeof v !== "string") throw FALLBACK;
        writeString(v);
      };
    case ScalarType.BYTES:
      return (v) => {
        if (!(v instanceof Uint8Array)) throw FALLBACK;
        writeBytes(v);
      };
    case ScalarType.BOOL:
      return (v) => {
        ensure(1);
        out[pos++] = v ? 1 : 0;
      };
    case ScalarType.INT32:
      return (v) => {
        if (typeof v !== "number" || (v | 0) !== v) throw FALLBACK;
        varintInt32(v);
      };
    case ScalarType.UINT32:
      return (v) => {
        if (typeof v !== "number" || v >>> 0 !== v) throw FALLBACK;
        varint32(v);
      };
    case ScalarType.SINT32:
      return (v) => {
        if (typeof v !== "number" || (v | 0) !== v) throw FALLBACK;
        varint32(((v << 1) ^ (v >> 31)) >>> 0);
      };
    case ScalarType.FIXED32:
      return (v) => {
        if (typeof v !== "number" || v >>> 0 !== v) throw FALLBACK;
        ensure(4);
        pos = out.writeUInt32LE(v, pos);
      };
    case ScalarType.SFIXED32:
      return (v) => {
        if (typeof v !== "number" || (v | 0) !== v) throw FALLBACK;
        ensure(4);
        pos = out.writeInt32LE(v, pos);
      };
    case ScalarType.FLOAT:
      return (v) => {
        if (typeof v !== "number" || (Number.isFinite(v) && Math.abs(v) > FLOAT32_MAX)) throw FALLBACK;
        ensure(4);
        pos = out.writeFloatLE(v, pos);
      };
    case ScalarType.DOUBLE:
      return (v) => {
        if (typeof v !== "number") throw FALLBACK;
        ensure(8);
        pos = out.writeDoubleLE(v, pos);
      };
    case ScalarType.INT64:
      return (v) => varint64(toInt64(v, false));
    case ScalarType.UINT64:
      return (v) => varint64(toInt64(v, true));
    case ScalarType.SINT64:
      return (v) => {
        const n = toInt64(v, false);
        varint64((n << 1n) ^ (n >> 63n));
      };
    case ScalarType.FIXED64:
      return (v) => {
        const n = toInt64(v, true);
        ensure(8);
        pos = out.writeBigUInt64LE(n, pos);
      };
    case ScalarType.SFIXED64:
      return (v) => {
        const n = toInt64(v, false);
        ensure(8);
        pos = out.writeBigInt64LE(n, pos);
      };
  }
}

function scalarValueReader(t: ScalarType, longAsString: boolean): () => Value {
  const long = (n: bigint) => (longAsString ? n.toString() : n);
  switch (t) {
    case ScalarType.STRING:
      return readString;
    case ScalarType.BYTES:
      return () => {
        const len = readLength();
        rpos += len;
        return inp.subarray(rpos - len, rpos);
      };
    case ScalarType.BOOL:
      return () => readVarint32() !== 0;
    case ScalarType.INT32:
      return () => readVarint32() | 0;
    case ScalarType.UINT32:
      return () => readVarint32() >>> 0;
    case ScalarType.SINT32:
      return () => {
        const n = readVarint32() >>> 0;
        return (n >>> 1) ^ -(n & 1);
      };
    case ScalarType.FIXED32:
      return () => fixed(4, () => inp.readUInt32LE(rpos));
    case ScalarType.SFIXED32:
      return () => fixed(4, () => inp.readInt32LE(rpos));
    case ScalarType.FLOAT:
      return () => fixed(4, () => inp.readFloatLE(rpos));
    case ScalarType.DOUBLE:
      return () => fixed(8, () => inp.readDoubleLE(rpos));
    case ScalarType.INT64:
      return () => long(BigInt.asIntN(64, readVarint64()));
    case ScalarType.UINT64:
      return () => long(BigInt.asUintN(64, readVarint64()));
    case ScalarType.SINT64:
      return () => {
        const n = BigInt.asUintN(64, readVarint64());
        return long((n >> 1n) ^ -(n & 1n));
      };
    case ScalarType.FIXED64:
      return () => long(fixed(8, () => inp.readBigUInt64LE(rpos)));
    case ScalarType.SFIXED64:
      return () => long(fixed(8, () => inp.readBigInt64LE(rpos)));
  }
}

function fixed<T>(size: number, read: () => T): T {
  if (rpos + size > inp.length) throw FALLBACK;
  const v = read();
  rpos += size;
  return v;
}

function messageWriter(desc: DescMessage): (v: Value) => void {
  const sub = codecOf(desc);
  if (sub.fast) {
    return (v) => {
      if (typeof v !== "object" || v === null) throw FALLBACK;
      const start = beginDelimited();
      writeBody(sub, v as Obj);
      endDelimited(start);
    };
  }
  return (v) => writeBytes(toBinary(desc, v as Message));
}

function messageReader(desc: DescMessage): () => Obj {
  const sub = codecOf(desc);
  return () => {
    const len = readLength();
    const end = rpos + len;
    if (!sub.fast) {
      rpos = end;
      return fromBinary(desc, inp.subarray(end - len, end)) as unknown as Obj;
    }
    return readBody(sub, end);
  };
}

/** A repeated field written one tagged element at a time (messages, unpacked scalars). */
function unpackedWriter(name: string, tag: number, writeItem: (v: Value) => void): (m: Obj) => void {
  return (m) => {
    const list = m[name] as Value[] | undefined;
    if (list == null) return;
    for (const item of list) {
      varint32(tag);
      writeItem(item);
    }
  };
}

function fieldPlan(f: DescField): { write: (m: Obj) => void; read: FieldReader } {
  const name = f.localName;
  const no = f.number;
  if (f.fieldKind === "list") {
    if (f.listKind === "message") {
      const tag = tagOf(no, WIRE_LEN);
      const write = messageWriter(f.message);
      const read = messageReader(f.message);
      return {
        write: unpackedWriter(name, tag, write),
        read: (m, wt) => {
          if (wt !== WIRE_LEN) throw FALLBACK;
          (m[name] as Value[]).push(read());
        },
      };
    }
    const t: ScalarType = f.listKind === "scalar" ? f.scalar : ScalarType.INT32;
    const wire = wireTypeOf(t);
    const value = scalarValueWriter(t);
    const readValue = scalarValueReader(t, f.listKind === "scalar" && f.longAsString);
    if (f.packed) {
      const tag = tagOf(no, WIRE_LEN);
      return {
        write: (m) => {
          const list = m[name] as Value[] | undefined;
          if (list == null || list.length === 0) return;
          varint32(tag);
          const start = beginDelimited();
          for (const item of list) value(item);
          endDelimited(start);
        },
        read: (m, wt) => readList(m[name] as Value[], wt, wire, readValue),
      };
    }
    return {
      write: unpackedWriter(name, tagOf(no, wire), value),
      read: (m, wt) => readList(m[name] as Value[], wt, wire, readValue),
    };
  }
  let write: (v: Value) => void;
  let read: () => Value;
  let wire: number;
  let isZero: (v: Value) => boolean;
  if (f.fieldKind === "message") {
    write = messageWriter(f.message);
    read = messageReader(f.message);
    wire = WIRE_LEN;
    isZero = () => false;
  } else {
    const t: ScalarType = f.fieldKind === "scalar" ? f.scalar : ScalarType.INT32;
    write = scalarValueWriter(t);
    read = scalarValueReader(t, f.fieldKind === "scalar" && f.longAsString);
    wire = wireTypeOf(t);
    const zeroEnum = f.fieldKind === "enum" ? f.enum.values[0].number : 0;
    isZero = f.fieldKind === "enum" ? (v) => v === zeroEnum : (v) => isScalarZeroValue(t, v);
  }
  const tag = tagOf(no, wire);
  if (f.oneof) {
    const group = f.oneof.localName;
    const isMessage = f.fieldKind === "message";
    return {
      write: (m) => {
        const o = m[group] as { case?: string; value?: Value } | undefined;
        if (o?.case !== name) return;
        varint32(tag);
        write(o.value);
      },
      read: (m, wt) => {
        if (wt !== wire) throw FALLBACK;
        // A second occurrence of the same message would be merged: protobuf-es does that.
        if (isMessage && (m[group] as { case?: string }).case === name) throw FALLBACK;
        m[group] = { case: name, value: read() };
      },
    };
  }
  const explicit = f.presence !== FeatureSet_FieldPresence.IMPLICIT;
  const isMessage = f.fieldKind === "message";
  return {
    write: explicit
      ? (m) => {
          const v = m[name];
          if (v === undefined || v === null || !Object.prototype.hasOwnProperty.call(m, name)) return;
          varint32(tag);
          write(v);
        }
      : (m) => {
          const v = m[name];
          if (v === undefined || v === null || isZero(v)) return;
          varint32(tag);
          write(v);
        },
    read: (m, wt) => {
      if (wt !== wire) throw FALLBACK;
      if (isMessage && m[name] !== undefined) throw FALLBACK;
      m[name] = read();
    },
  };
}

function readList(list: Value[], wt: number, wire: number, readValue: () => Value): void {
  if (wt === wire) {
    list.push(readValue());
    return;
  }
  // Packed and unpacked encodings of numeric lists are both valid input.
  if (wt !== WIRE_LEN || wire === WIRE_LEN) throw FALLBACK;
  const end = rpos + readLength();
  while (rpos < end) list.push(readValue());
  if (rpos !== end) throw FALLBACK;
}

function zeroFactory(desc: DescMessage): () => Obj {
  // The same own properties, in the same order, as protobuf-es' createZeroMessage for proto3.
  const template: Obj = { $typeName: desc.typeName };
  const fresh: { name: string; make: () => Value }[] = [];
  for (const member of desc.members) {
    if (member.kind === "oneof") {
      template[member.localName] = undefined;
      fresh.push({ name: member.localName, make: () => ({ case: undefined }) });
    } else if (member.presence === FeatureSet_FieldPresence.IMPLICIT) {
      const name = member.localName;
      switch (member.fieldKind) {
        case "list":
          template[name] = undefined;
          fresh.push({ name, make: () => [] });
          break;
        case "enum":
          template[name] = member.enum.values[0].number;
          break;
        case "scalar":
          if (member.scalar === ScalarType.BYTES) {
            template[name] = undefined;
            fresh.push({ name, make: () => new Uint8Array(0) });
          } else template[name] = zeroScalar(member.scalar, member.longAsString);
          break;
        default:
          // map (never on a fast type) and message (explicit presence) fields are not set.
          break;
      }
    }
  }
  return () => {
    const m = { ...template };
    for (const f of fresh) m[f.name] = f.make();
    return m;
  };
}

function zeroScalar(t: ScalarType, longAsString: boolean): Value {
  switch (t) {
    case ScalarType.STRING:
      return "";
    case ScalarType.BOOL:
      return false;
    case ScalarType.INT64:
    case ScalarType.UINT64:
    case ScalarType.SINT64:
    case ScalarType.FIXED64:
    case ScalarType.SFIXED64:
      return longAsString ? "0" : 0n;
    default:
      return 0;
  }
}

function planOf(c: Codec): Plan {
  if (c.plan) return c.plan;
  const sorted = [...c.desc.fields].sort((a, b) => a.number - b.number);
  const plans = sorted.map((f) => ({ no: f.number, ...fieldPlan(f) }));
  const maxNo = sorted.length ? sorted[sorted.length - 1].number : 0;
  let readers: Plan["readers"];
  if (maxNo <= 256) {
    const arr: (FieldReader | undefined)[] = new Array(maxNo + 1).fill(undefined);
    for (const p of plans) arr[p.no] = p.read;
    readers = arr;
  } else {
    readers = new Map(plans.map((p) => [p.no, p.read]));
  }
  c.plan = { writers: plans.map((p) => p.write), readers, zero: zeroFactory(c.desc) };
  return c.plan;
}

function writeBody(c: Codec, m: Obj): void {
  const unknown = m.$unknown as unknown[] | undefined;
  if (unknown && unknown.length > 0) throw FALLBACK;
  for (const w of planOf(c).writers) w(m);
}

function readBody(c: Codec, end: number): Obj {
  if (++depth > MAX_DEPTH) throw FALLBACK;
  const plan = planOf(c);
  const m = plan.zero();
  const readers = plan.readers;
  while (rpos < end) {
    const tag = readVarint32() >>> 0;
    const no = tag >>> 3;
    const read = Array.isArray(readers) ? readers[no] : readers.get(no);
    // Unknown fields are kept by protobuf-es ($unknown): let it read this message.
    if (!read || no === 0) throw FALLBACK;
    read(m, tag & 7);
  }
  if (rpos !== end) throw FALLBACK;
  depth--;
  return m;
}

/** A grpc-js serializer/deserializer pair for one message type. */
export interface MessageCodec {
  serialize(msg: Message): Buffer;
  deserialize(buf: Buffer): Message;
}

function toBuffer(bytes: Uint8Array): Buffer {
  // Wrap without copying: grpc-js only needs a Buffer view for framing.
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}

/**
 * Whether `schema` is written by the compiled codec, which also takes a plain object of the
 * message's shape (fields missing = unset, nested messages plain objects too) without create().
 */
export function isFastMessage(schema: DescMessage): boolean {
  return codecOf(schema).fast;
}

/** The codec of `schema`: the compiled one for common proto3 types, protobuf-es for the rest. */
export function messageCodec(schema: DescMessage): MessageCodec {
  const c = codecOf(schema);
  if (!c.fast) {
    return { serialize: (msg) => toBuffer(toBinary(schema, msg)), deserialize: (buf) => fromBinary(schema, buf) };
  }
  return {
    serialize(msg) {
      pos = 0;
      try {
        writeBody(c, msg as unknown as Obj);
      } catch (e) {
        if (e !== FALLBACK) throw e;
        return toBuffer(toBinary(schema, isMessage(msg, schema) ? msg : create(schema, msg as never)));
      }
      const result = Buffer.allocUnsafe(pos);
      out.copy(result, 0, 0, pos);
      return result;
    },
    deserialize(buf) {
      const bytes = Buffer.isBuffer(buf) ? buf : Buffer.from((buf as Uint8Array).buffer, (buf as Uint8Array).byteOffset, (buf as Uint8Array).byteLength);
      inp = bytes;
      rpos = 0;
      depth = 0;
      try {
        return readBody(c, bytes.length) as unknown as Message;
      } catch (e) {
        if (e !== FALLBACK && !(e instanceof RangeError)) throw e;
        return fromBinary(schema, buf);
      } finally {
        inp = EMPTY;
      }
    },
  };
}

const EMPTY = Buffer.alloc(0);
