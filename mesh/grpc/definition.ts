import { fromBinary, toBinary, type DescMessage, type DescMethod, type DescService, type Message } from "@bufbuild/protobuf";
import type { MethodDefinition, ServiceDefinition } from "@grpc/grpc-js";

/** The HTTP/2 path of a method: `/package.Service/Method`. */
export function methodPath(method: DescMethod): string {
  return `/${method.parent.typeName}/${method.name}`;
}

function serializer(schema: DescMessage) {
  return (msg: Message): Buffer => {
    const bytes = toBinary(schema, msg);
    // Wrap without copying: grpc-js only needs a Buffer view for framing.
    return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  };
}

function deserializer(schema: DescMessage) {
  return (buf: Buffer): Message => fromBinary(schema, buf);
}

const definitions = new WeakMap<DescService, ServiceDefinition>();

/**
 * A grpc-js service definition built from a protobuf-es service descriptor: paths, streaming
 * kinds and (de)serializers all come from the generated code, so no proto-loader is involved.
 */
export function grpcServiceDefinition(service: DescService): ServiceDefinition {
  let def = definitions.get(service);
  if (def) return def;
  const methods: Record<string, MethodDefinition<Message, Message>> = {};
  for (const method of service.methods) {
    const m: MethodDefinition<Message, Message> = {
      path: methodPath(method),
      requestStream: method.methodKind === "client_streaming" || method.methodKind === "bidi_streaming",
      responseStream: method.methodKind === "server_streaming" || method.methodKind === "bidi_streaming",
      requestSerialize: serializer(method.input),
      requestDeserialize: deserializer(method.input),
      responseSerialize: serializer(method.output),
      responseDeserialize: deserializer(method.output),
      originalName: method.localName,
    };
    methods[method.name] = m;
  }
  def = methods as ServiceDefinition;
  definitions.set(service, def);
  return def;
}
