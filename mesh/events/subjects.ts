import type { DescMessage } from "@bufbuild/protobuf";
import { Code, ConnectError } from "@connectrpc/connect";

/**
 * The NATS subject an event type is published on: `<domain>.<event_name>`, where the domain is the
 * first segment of the protobuf package and the name is the message name in snake_case, e.g.
 * `orders.v1.OrderPlaced` → `orders.order_placed`. The stream of a domain captures `<domain>.>`.
 */
export function subjectFor(type: DescMessage | string): string {
  const typeName = typeof type === "string" ? type : type.typeName;
  const parts = typeName.split(".");
  if (parts.length < 2 || parts.some((p) => p === "")) {
    throw new ConnectError(`event type "${typeName}" has no package; expected e.g. "orders.v1.OrderPlaced"`, Code.InvalidArgument);
  }
  return `${parts[0]}.${snakeCase(parts[parts.length - 1])}`;
}

/** The domain (first subject token) of an event subject, e.g. `orders.order_placed` → `orders`. */
export function domainOf(subject: string): string {
  return subject.split(".")[0];
}

function snakeCase(name: string): string {
  return name
    .replace(/([A-Z]+)([A-Z][a-z])/g, "$1_$2")
    .replace(/([a-z0-9])([A-Z])/g, "$1_$2")
    .toLowerCase();
}
