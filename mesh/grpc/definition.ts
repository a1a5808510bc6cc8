import type { DescMethod, DescService, Message } from "@bufbuild/protobuf";
import type { MethodDefinition, ServiceDefinition } from "@grpc/grpc-js";
import { messageCodec } from "./fast-codec.js";

/** The HTTP/2 path of a method: `/package.Service/Method`. */
export function methodPath(method: DescMethod): string {
  // Built once per method: the client asks for it on every call.
  let p = paths.get(method);
  if (p === undefined) paths.set(method, (p = `/${method.parent.typeName}/${method.name}`));
  return p;
}

const paths = new WeakMap<DescMethod, string>();

const definitions = new WeakMap<DescService, ServiceDefinition>();

/**
 * A grpc-js service definition built from a protobuf-es service descriptor: paths, streaming
 * kinds and (de)serializers all come from the generated code, so no proto-loader is involved.
 * Messages are (de)serialised by {@link messageCodec}: protobuf-es' wire format, compiled per type.
 */
export function grpcServiceDefinition(service: DescService): ServiceDefinition {
  let def = definitions.get(service);
  if (def) return def;
  const methods: Record<string, MethodDefinition<Message, Message>> = {};
  for (const method of service.methods) {
    const input = messageCodec(method.input);
    const output = messageCodec(method.output);
    const m: MethodDefinition<Message, Message> = {
      path: methodPath(method),
      requestStream: method.methodKind === "client_streaming" || method.methodKind === "bidi_streaming",
      responseStream: method.methodKind === "server_streaming" || method.methodKind === "bidi_streaming",
      requestSerialize: input.serialize,
      requestDeserialize: input.deserialize,
      responseSerialize: output.serialize,
      responseDeserialize: output.deserialize,
      originalName: method.localName,
    };
    methods[method.name] = m;
  }
  def = methods as ServiceDefinition;
  definitions.set(service, def);
  return def;
}
