/**
 * HTTP/1.1 load from `wrk` (Debian's, /usr/bin/wrk) pinned to one CPU, one thread, keep-alive
 * connections each with one request in flight. A Lua `done` hook prints the figures as JSON; every
 * response that is not 2xx/3xx (wrk's "Non-2xx or 3xx responses") and every socket error is counted
 * as a failure.
 */
import { execFile } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { RoundResult } from "../hop/run-hop.js";

/** One HTTP request to repeat. */
export interface WrkRequest {
  method: "GET" | "POST";
  path: string;
  body?: string;
  headers?: Record<string, string>;
}

const DONE = `
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format('WRK {"requests":%d,"durationUs":%d,"status":%d,"connect":%d,"read":%d,"write":%d,"timeout":%d,"p50Us":%d,"p99Us":%d}\\n',
    summary.requests, summary.duration, e.status, e.connect, e.read, e.write, e.timeout, latency:percentile(50), latency:percentile(99)))
end
`;

function script(r: WrkRequest): string {
  const lines = [`wrk.method = ${JSON.stringify(r.method)}`];
  if (r.body !== undefined) lines.push(`wrk.body = ${JSON.stringify(r.body)}`);
  for (const [k, v] of Object.entries(r.headers ?? {})) lines.push(`wrk.headers[${JSON.stringify(k)}] = ${JSON.stringify(v)}`);
  return lines.join("\n") + "\n" + DONE;
}

/** Runs wrk on `cpu` against 127.0.0.1:`port` for `seconds` with `connections` connections; successful calls per second, p50/p99 in ms, responses by outcome. */
export async function runWrk(opts: { cpu: number; port: number; request: WrkRequest; connections: number; seconds: number; kind: string }): Promise<RoundResult> {
  const dir = mkdtempSync(join(tmpdir(), "meshwork-wrk-"));
  try {
    const file = join(dir, "request.lua");
    writeFileSync(file, script(opts.request));
    const args = ["-c", String(opts.cpu), "wrk", "-t1", `-c${opts.connections}`, `-d${opts.seconds}s`, "--timeout", "10s", "-s", file, `http://127.0.0.1:${opts.port}${opts.request.path}`];
    const out = await new Promise<string>((resolve, reject) =>
      execFile("taskset", args, { timeout: (opts.seconds + 30) * 1000 }, (err, stdout, stderr) => (err ? reject(new Error(`wrk failed: ${err.message}\n${stderr}`)) : resolve(stdout))),
    );
    const m = /^WRK (\{.*\})$/m.exec(out);
    if (!m) throw new Error(`wrk printed no summary:\n${out}`);
    const s = JSON.parse(m[1]) as { requests: number; durationUs: number; status: number; connect: number; read: number; write: number; timeout: number; p50Us: number; p99Us: number };
    const ok = s.requests - s.status;
    const codes: Record<string, number> = { ok };
    if (s.status > 0) codes["non-2xx"] = s.status;
    for (const k of ["connect", "read", "write", "timeout"] as const) if (s[k] > 0) codes[`socket ${k}`] = s[k];
    return { kind: opts.kind, rps: ok / (s.durationUs / 1e6), p50: s.p50Us / 1000, p99: s.p99Us / 1000, codes };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
