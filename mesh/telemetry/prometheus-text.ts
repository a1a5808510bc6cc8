/**
 * Just enough of the Prometheus text exposition format (0.0.4) to read back what `/metrics`
 * serves: samples with their labels, comments and timestamps skipped. Used by the console to read
 * every instance's gauges and by tests to check series after known traffic. A full client library
 * would be a dependency for ~40 lines of parsing.
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

/** The value of the first sample named `name` whose labels include `labels`; undefined if none. */
export function findSample(samples: Sample[], name: string, labels: Record<string, string> = {}): number | undefined {
  return samples.find((s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v))?.value;
}
