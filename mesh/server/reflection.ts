import { create, toBinary, type DescFile, type DescService, type Message } from "@bufbuild/protobuf";
import { nestedTypes } from "@bufbuild/protobuf/reflect";
import { FileDescriptorProtoSchema, type DescriptorProto, type EnumDescriptorProto } from "@bufbuild/protobuf/wkt";
import { Code } from "@connectrpc/connect";
import type { Server, ServerDuplexStream } from "@grpc/grpc-js";
import * as v1 from "../../gen/grpc/reflection/v1/reflection_pb.js";
import * as v1alpha from "../../gen/grpc/reflection/v1alpha/reflection_pb.js";
import { grpcServiceDefinition } from "../grpc/index.js";

/** The two reflection services (v1 and the older v1alpha that many tools still try first). */
export const REFLECTION_SERVICES: readonly DescService[] = [v1.ServerReflection, v1alpha.ServerReflection];

/** The oneof a reflection request carries, in v1 and v1alpha alike. */
type ReflectionRequest =
  | { case: "fileByFilename" | "fileContainingSymbol" | "allExtensionNumbersOfType" | "listServices"; value: string }
  | { case: "fileContainingExtension"; value: { containingType: string; extensionNumber: number } }
  | { case: undefined; value?: undefined };

/** A reflection answer, shaped so it initialises the response oneof of either version. */
type ReflectionAnswer =
  | { case: "fileDescriptorResponse"; value: { fileDescriptorProto: Uint8Array[] } }
  | { case: "allExtensionNumbersResponse"; value: { baseTypeName: string; extensionNumber: number[] } }
  | { case: "listServicesResponse"; value: { service: Array<{ name: string }> } }
  | { case: "errorResponse"; value: { errorCode: number; errorMessage: string } };

/**
 * An index over the original protobuf-es file descriptors of the given services and everything
 * they import, answering the questions of the reflection protocol. Descriptors are serialised
 * from `DescFile.proto`, so options, extensions and imports survive (unlike proto-loader output).
 */
export class ReflectionIndex {
  private readonly files = new Map<string, DescFile>();
  private readonly symbols = new Map<string, DescFile>();
  private readonly messages = new Set<string>();
  /** extendee type name → extension number → declaring file. */
  private readonly extensions = new Map<string, Map<number, DescFile>>();
  private readonly encoded = new Map<DescFile, Uint8Array>();
  private readonly serviceNames: string[];

  constructor(services: readonly DescService[]) {
    this.serviceNames = [...new Set(services.map((s) => s.typeName))].sort();
    for (const s of services) this.addFile(s.file);
  }

  /** Full names of every service, sorted. */
  listServices(): string[] {
    return [...this.serviceNames];
  }

  /** Answers one reflection request. */
  answer(req: ReflectionRequest): ReflectionAnswer {
    switch (req.case) {
      case "listServices":
        return { case: "listServicesResponse", value: { service: this.serviceNames.map((name) => ({ name })) } };
      case "fileByFilename":
        return this.filesAnswer(this.files.get(req.value), `file "${req.value}"`);
      case "fileContainingSymbol":
        return this.filesAnswer(this.symbols.get(stripDot(req.value)), `symbol "${req.value}"`);
      case "fileContainingExtension": {
        const { containingType, extensionNumber } = req.value;
        const file = this.extensions.get(stripDot(containingType))?.get(extensionNumber);
        return this.filesAnswer(file, `extension ${extensionNumber} of "${containingType}"`);
      }
      case "allExtensionNumbersOfType": {
        const name = stripDot(req.value);
        if (!this.messages.has(name)) return notFound(`message type "${req.value}"`);
        const numbers = [...(this.extensions.get(name)?.keys() ?? [])].sort((a, b) => a - b);
        return { case: "allExtensionNumbersResponse", value: { baseTypeName: name, extensionNumber: numbers } };
      }
      default:
        return { case: "errorResponse", value: { errorCode: Code.InvalidArgument, errorMessage: "the request sets no message_request" } };
    }
  }

  /** The file and its transitive imports, the file first: what grpcurl and buf curl expect. */
  private filesAnswer(file: DescFile | undefined, what: string): ReflectionAnswer {
    if (!file) return notFound(what);
    const out: Uint8Array[] = [];
    const seen = new Set<DescFile>();
    const visit = (f: DescFile) => {
      if (seen.has(f)) return;
      seen.add(f);
      out.push(this.encode(f));
      f.dependencies.forEach(visit);
    };
    visit(file);
    return { case: "fileDescriptorResponse", value: { fileDescriptorProto: out } };
  }

  private encode(file: DescFile): Uint8Array {
    let bytes = this.encoded.get(file);
    if (!bytes) {
      bytes = toBinary(FileDescriptorProtoSchema, file.proto);
      this.encoded.set(file, bytes);
    }
    return bytes;
  }

  private addFile(file: DescFile): void {
    const fileName = file.proto.name;
    if (this.files.has(fileName)) return;
    this.files.set(fileName, file);
    // Names come from the FileDescriptorProto: it also holds what protobuf-es hides (map entry
    // messages, synthetic oneofs of proto3 `optional`), which are symbols to protoc all the same.
    const scope = file.proto.package ? `${file.proto.package}.` : "";
    const addEnums = (prefix: string, enums: readonly EnumDescriptorProto[]) => {
      for (const e of enums) {
        this.symbols.set(prefix + e.name, file);
        // Enum values are scoped beside their enum (C++ scoping rules), not inside it.
        for (const v of e.value) this.symbols.set(prefix + v.name, file);
      }
    };
    const addMessages = (prefix: string, messages: readonly DescriptorProto[]) => {
      for (const m of messages) {
        const name = prefix + m.name;
        this.symbols.set(name, file);
        this.messages.add(name);
        for (const f of [...m.field, ...m.extension, ...m.oneofDecl]) this.symbols.set(`${name}.${f.name}`, file);
        addMessages(`${name}.`, m.nestedType);
        addEnums(`${name}.`, m.enumType);
      }
    };
    addMessages(scope, file.proto.messageType);
    addEnums(scope, file.proto.enumType);
    for (const x of file.proto.extension) this.symbols.set(scope + x.name, file);
    for (const svc of file.proto.service) {
      this.symbols.set(scope + svc.name, file);
      for (const m of svc.method) this.symbols.set(`${scope}${svc.name}.${m.name}`, file);
    }
    // Extensions (top-level and nested) with their resolved extendee.
    for (const t of nestedTypes(file)) {
      if (t.kind !== "extension") continue;
      let byNumber = this.extensions.get(t.extendee.typeName);
      if (!byNumber) this.extensions.set(t.extendee.typeName, (byNumber = new Map()));
      byNumber.set(t.number, file);
    }
    file.dependencies.forEach((d) => this.addFile(d));
  }
}

function stripDot(name: string): string {
  return name.startsWith(".") ? name.slice(1) : name;
}

function notFound(what: string): ReflectionAnswer {
  return { case: "errorResponse", value: { errorCode: Code.NotFound, errorMessage: `${what} not found` } };
}

/**
 * Adds `grpc.reflection.v1.ServerReflection` and `grpc.reflection.v1alpha.ServerReflection` to a
 * grpc-js server, answering from `index`. The method is a bidi stream (which the mesh adapter does
 * not support), so it is wired to grpc-js directly: one response per request, in order. Streams
 * end when `stopSignal` aborts.
 */
export function addReflectionServices(server: Server, index: ReflectionIndex, stopSignal?: AbortSignal): void {
  // Each version gets its own response type; the request oneof and the answers are identical.
  serve(server, stopSignal, v1.ServerReflection, (req: v1.ServerReflectionRequest) =>
    create(v1.ServerReflectionResponseSchema, { validHost: req.host, originalRequest: req, messageResponse: index.answer(req.messageRequest) }),
  );
  serve(server, stopSignal, v1alpha.ServerReflection, (req: v1alpha.ServerReflectionRequest) =>
    create(v1alpha.ServerReflectionResponseSchema, { validHost: req.host, originalRequest: req, messageResponse: index.answer(req.messageRequest) }),
  );
}

function serve<Req extends Message, Res extends Message>(server: Server, stopSignal: AbortSignal | undefined, desc: DescService, respond: (req: Req) => Res): void {
  server.addService(grpcServiceDefinition(desc), {
    ServerReflectionInfo: (call: ServerDuplexStream<Req, Res>) => {
      // A tool that keeps its stream open must not hold a graceful stop: end it (OK) on stop.
      const stop = () => call.end();
      if (stopSignal?.aborted) return stop();
      stopSignal?.addEventListener("abort", stop, { once: true });
      const done = () => stopSignal?.removeEventListener("abort", stop);
      call.on("data", (req: Req) => call.write(respond(req)));
      call.on("end", () => {
        done();
        call.end();
      });
      call.on("close", done);
      // A client that goes away mid-stream is not an error worth surfacing.
      call.on("error", done);
    },
  });
}
