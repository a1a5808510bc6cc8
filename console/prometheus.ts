/**
 * The gauges the console shows, read from each instance's `/metrics` (parsed by
 * mesh/telemetry/prometheus-text.ts).
 */
import { parsePrometheusText, parseSampleLine, type Sample } from "../mesh/telemetry/prometheus-text.js";

export { parsePrometheusText, parseSampleLine, type Sample };

/** Breaker state names by the gauge value of `rpc_client_breaker_state` (mesh/telemetry). */
const BREAKER_STATES = ["closed", "half-open", "open"] as const;

/** A client target's state as one instance reports it. */
export interface ClientTargetGauges {
  /** Logical service called ("inventory"). */
  target: string;
  /** null when the instance exports no breaker gauge for the target. */
  breaker: (typeof BREAKER_STATES)[number] | "unknown" | null;
  ejectedEndpoints: number | null;
  knownEndpoints: number | null;
}

/** The gauges of one instance the console shows. */
export interface InstanceGauges {
  clients: ClientTargetGauges[];
  /** `meshwork_outbox_backlog`; null when the instance has no outbox. */
  outboxBacklog: number | null;
  /** Sum of `meshwork_dlq_messages` over its label sets; null when not exported. */
  dlqMessages: number | null;
}

/** Picks the client breaker/endpoint gauges, the outbox backlog and the DLQ size out of parsed samples. */
export function instanceGauges(samples: Sample[]): InstanceGauges {
  const clients = new Map<string, ClientTargetGauges>();
  const client = (target: string) => {
    let c = clients.get(target);
    if (!c) {
      c = { target, breaker: null, ejectedEndpoints: null, knownEndpoints: null };
      clients.set(target, c);
    }
    return c;
  };
  let outboxBacklog: number | null = null;
  let dlqMessages: number | null = null;
  for (const s of samples) {
    switch (s.name) {
      case "rpc_client_breaker_state":
        client(s.labels.target ?? "").breaker = BREAKER_STATES[s.value] ?? "unknown";
        break;
      case "rpc_client_ejected_endpoints":
        client(s.labels.target ?? "").ejectedEndpoints = s.value;
        break;
      case "rpc_client_known_endpoints":
        client(s.labels.target ?? "").knownEndpoints = s.value;
        break;
      case "meshwork_outbox_backlog":
        outboxBacklog = (outboxBacklog ?? 0) + s.value;
        break;
      case "meshwork_dlq_messages":
        dlqMessages = (dlqMessages ?? 0) + s.value;
        break;
    }
  }
  return { clients: [...clients.values()].sort((a, b) => a.target.localeCompare(b.target)), outboxBacklog, dlqMessages };
}
