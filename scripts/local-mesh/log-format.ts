// pino's numeric levels (https://getpino.io/#/docs/api?id=levels); createLogger writes the word instead.
const LEVELS: Record<number, string> = { 10: "TRACE", 20: "DEBUG", 30: "INFO", 40: "WARN", 50: "ERROR", 60: "FATAL" };
// Fields every pino line carries that the prefix or the terminal already says.
const DROP = new Set(["level", "time", "pid", "hostname", "msg", "name", "v", "service", "instance"]);
// A long value (a stack, a request body) would wrap over many terminal lines; the full text stays in the service.
const MAX_VALUE_CHARS = 300;

/**
 * One log line made readable: a pino JSON line becomes `LEVEL msg key=value ...` (errors by
 * their message), anything else is returned unchanged.
 */
export function formatLogLine(line: string): string {
  if (!line.startsWith("{")) return line;
  let o: Record<string, unknown>;
  try {
    o = JSON.parse(line) as Record<string, unknown>;
  } catch {
    return line;
  }
  if (typeof o !== "object" || o === null || (typeof o.level !== "number" && typeof o.level !== "string")) return line;
  const parts = [typeof o.level === "string" ? o.level.toUpperCase() : (LEVELS[o.level] ?? `L${o.level}`)];
  if (typeof o.msg === "string" && o.msg !== "") parts.push(o.msg);
  for (const [k, v] of Object.entries(o)) {
    if (DROP.has(k) || v === undefined) continue;
    parts.push(`${k}=${short(k === "err" || k === "error" ? errorText(v) : v)}`);
  }
  return parts.join(" ");
}

function errorText(v: unknown): unknown {
  if (typeof v === "object" && v !== null && typeof (v as { message?: unknown }).message === "string") return (v as { message: string }).message;
  return v;
}

function short(v: unknown): string {
  const s = typeof v === "string" ? (/\s/.test(v) ? JSON.stringify(v) : v) : JSON.stringify(v);
  return s.length > MAX_VALUE_CHARS ? `${s.slice(0, MAX_VALUE_CHARS)}…` : s;
}
