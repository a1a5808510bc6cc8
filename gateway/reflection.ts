import { create, fromBinary, toBinary, type DescMethod, type DescService } from "@bufbuild/protobuf";
import { FileDescriptorProtoSchema } from "@bufbuild/protobuf/wkt";
import { Code, type ServiceImpl } from "@connectrpc/connect";
import * as v1 from "../gen/grpc/reflection/v1/reflection_pb.js";
import * as v1alpha from "../gen/grpc/reflection/v1alpha/reflection_pb.js";
import { REFLECTION_SERVICES, ReflectionIndex } from "../mesh/server/reflection.js";

/**
 * gRPC server reflection (v1 and v1alpha) for the gateway's Connect router, so `buf curl` and
 * grpcurl work against the gateway over gRPC. The descriptor index is mesh/server's
 * {@link ReflectionIndex} (shared with grpc-js services); this file adds the Connect bidi handlers
 * and hides methods the gateway does not expose: they are removed from served service
 * descriptors and their symbols are not found.
 */

type Answer = ReturnType<ReflectionIndex["answer"]>;
type Request = Parameters<ReflectionIndex["answer"]>[0];

/** Options for {@link reflectionServices}. */
export interface ReflectionOptions {
  /** False hides a method (default: every method is shown). */
  exposeMethod?: (method: DescMethod) => boolean;
}

/** Reflection implementations for `router.service(desc, impl)`: v1 and v1alpha. */
export function reflectionServices(
  services: readonly DescService[],
  opts: ReflectionOptions = {},
): [[typeof v1.ServerReflection, ServiceImpl<typeof v1.ServerReflection>], [typeof v1alpha.ServerReflection, ServiceImpl<typeof v1alpha.ServerReflection>]] {
  const index = new ReflectionIndex([...services, ...REFLECTION_SERVICES]);
  const hidden = new Map<string, Set<string>>();
  for (const s of services) {
    const names = s.methods.filter((m) => !(opts.exposeMethod?.(m) ?? true)).map((m) => m.name);
    if (names.length > 0) hidden.set(s.typeName, new Set(names));
  }
  const stripped = new WeakMap<Uint8Array, Uint8Array>();
  const strip = (bytes: Uint8Array): Uint8Array => {
    let out = stripped.get(bytes);
    if (!out) {
      const file = fromBinary(FileDescriptorProtoSchema, bytes);
      let changed = false;
      for (const svc of file.service) {
        const hide = hidden.get(file.package ? `${file.package}.${svc.name}` : svc.name);
        if (!hide) continue;
        svc.method = svc.method.filter((m) => !hide.has(m.name));
        changed = true;
      }
      out = changed ? toBinary(FileDescriptorProtoSchema, file) : bytes;
      stripped.set(bytes, out);
    }
    return out;
  };
  const isHiddenSymbol = (name: string): boolean => {
    const n = name.startsWith(".") ? name.slice(1) : name;
    const dot = n.lastIndexOf(".");
    return dot > 0 && (hidden.get(n.slice(0, dot))?.has(n.slice(dot + 1)) ?? false);
  };
  const answer = (req: Request): Answer => {
    if (req.case === "fileContainingSymbol" && isHiddenSymbol(req.value)) {
      return { case: "errorResponse", value: { errorCode: Code.NotFound, errorMessage: `symbol "${req.value}" not found` } };
    }
    const a = index.answer(req);
    if (a.case !== "fileDescriptorResponse" || hidden.size === 0) return a;
    return { case: "fileDescriptorResponse", value: { fileDescriptorProto: a.value.fileDescriptorProto.map(strip) } };
  };
  return [
    [
      v1.ServerReflection,
      {
        async *serverReflectionInfo(requests) {
          for await (const req of requests) {
            yield create(v1.ServerReflectionResponseSchema, { validHost: req.host, originalRequest: req, messageResponse: answer(req.messageRequest) });
          }
        },
      },
    ],
    [
      v1alpha.ServerReflection,
      {
        async *serverReflectionInfo(requests) {
          for await (const req of requests) {
            yield create(v1alpha.ServerReflectionResponseSchema, { validHost: req.host, originalRequest: req, messageResponse: answer(req.messageRequest) });
          }
        },
      },
    ],
  ];
}
