/**
 * Just enough of the Prometheus text exposition format (0.0.4) to read the gauges the console
 * shows from each instance's `/metrics`: samples with their labels, comments and timestamps
 * skipped. A full client library would be a dependency for ~40 lines of parsing.
 */

/** One sample line: `name{label="value",...} value`. */
export interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

const NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*/;
const LABEL_NAME = /^[a-zA-Z_][a-zA-Z0-9_]*/;

function parseValue(raw: string): number {
  if (raw === "+Inf" || raw === "Inf") return Infinity;
  if (raw === "-Inf") return -Infinity;
  if (raw === "NaN") return NaN;
  const n = Number(raw);
  return raw !== "" && !Number.isNaN(n) ? n : NaN;
}

/** Parses one sample line; undefined for comments, blank and malformed lines. */
export function parseSampleLine(line: string): Sample | undefined {
  const text = line.trim();
  if (text === "" || text.startsWith("#")) return undefined;
  const name = NAME.exec(text)?.[0];
  if (!name) return undefined;
  let i = name.length;
  const labels: Record<string, string> = {};
  if (text[i] === "{") {
    i++;
    for (;;) {
      while (text[i] === " " || text[i] === ",") i++;
      if (text[i] === "}") {
        i++;
        break;
      }
      const label = LABEL_NAME.exec(text.slice(i))?.[0];
      if (!label) return undefined;
      i += label.length;
      while (text[i] === " ") i++;
      if (text[i] !== "=" || text[i + 1] !== '"') return undefined;
      i += 2;
      let value = "";
      for (;;) {
        const c = text[i];
        if (c === undefined) return undefined;
        if (c === '"') break;
        if (c === "\\") {
          const next = text[i + 1];
          value += next === "n" ? "\n" : next === undefined ? "" : next;
          i += 2;
          continue;
        }
        value += c;
        i++;
      }
      i++;
      labels[label] = value;
    }
  }
  // The value, then an optional timestamp we do not need.
  const rest = text.slice(i).trim().split(/\s+/);
  const value = parseValue(rest[0] ?? "");
  if (rest[0] === undefined || (Number.isNaN(value) && rest[0] !== "NaN")) return undefined;
  return { name, labels, value };
}

/** Every sample of a Prometheus text page, in order; malformed lines are skipped. */
export function parsePrometheusText(text: string): Sample[] {
  const out: Sample[] = [];
  for (const line of text.split("\n")) {
    const s = parseSampleLine(line);
    if (s) out.push(s);
  }
  return out;
}

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
