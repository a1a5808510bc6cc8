/**
 * HTTP/1.1 keep-alive load for one round: `driver.ts <port> <connections> <durationMs>` keeps one
 * Connect JSON GetProduct POST in flight per connection and prints one JSON line (the shape of
 * bench/hop/driver.ts): successful calls per second, p50/p99 in ms, responses by HTTP status.
 */
import * as net from "node:net";
import { quantile } from "../lib/stats.js";

const [portArg, connArg, durationArg] = process.argv.slice(2);
const port = Number(portArg);
const body = '{"id":"p1"}';
const request = Buffer.from(
  `POST /catalog.v1.CatalogService/GetProduct HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nContent-Type: application/json\r\nConnect-Protocol-Version: 1\r\nContent-Length: ${body.length}\r\n\r\n${body}`,
);

function load(connections: number, durationMs: number, latencies: number[], codes: Record<string, number>): Promise<void> {
  const end = Date.now() + durationMs;
  const one = () =>
    new Promise<void>((resolve) => {
      const socket = net.connect(port, "127.0.0.1");
      socket.setNoDelay(true);
      let buf = "";
      let t0 = 0n;
      const send = () => {
        t0 = process.hrtime.bigint();
        socket.write(request);
      };
      socket.on("connect", send);
      socket.on("data", (chunk: Buffer) => {
        buf += chunk.toString("latin1");
        for (;;) {
          const head = buf.indexOf("\r\n\r\n");
          if (head < 0) return;
          const len = Number(/content-length: (\d+)/i.exec(buf.slice(0, head))?.[1] ?? 0);
          if (buf.length < head + 4 + len) return;
          const status = /^HTTP\/1\.1 (\d+)/.exec(buf)?.[1] ?? "bad";
          const k = status === "200" ? "ok" : `http ${status}`;
          codes[k] = (codes[k] ?? 0) + 1;
          latencies.push(Number(process.hrtime.bigint() - t0) / 1e6);
          buf = buf.slice(head + 4 + len);
          if (Date.now() >= end) return void socket.end();
          send();
        }
      });
      socket.on("close", () => resolve());
      socket.on("error", (e) => {
        codes[`socket ${(e as NodeJS.ErrnoException).code ?? "error"}`] = (codes[`socket ${(e as NodeJS.ErrnoException).code ?? "error"}`] ?? 0) + 1;
        resolve();
      });
    });
  return Promise.all(Array.from({ length: connections }, one)).then(() => undefined);
}

async function main() {
  const connections = Number(connArg);
  // Warm-up: JIT and connection setup must not count.
  await load(connections, 500, [], {});
  const latencies: number[] = [];
  const codes: Record<string, number> = {};
  const started = process.hrtime.bigint();
  await load(connections, Number(durationArg), latencies, codes);
  const elapsedS = Number(process.hrtime.bigint() - started) / 1e9;
  process.stdout.write(JSON.stringify({ kind: "edge", rps: (codes.ok ?? 0) / elapsedS, p50: quantile(latencies, 0.5), p99: quantile(latencies, 0.99), codes }) + "\n");
  process.exit(0);
}
void main();
