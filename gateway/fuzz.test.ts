import { setFlagsFromString } from "node:v8";
import { runInNewContext } from "node:vm";
import { fuzzGateway } from "../tests/faults/fixtures/shop-fuzz.js";
import { startFakeBackends, startTestGateway, testToken, type FakeBackends, type TestGateway } from "./testing.js";

/**
 * R11 fuzz on the connect-node path (MESHWORK_GATEWAY_FAST_PATH=false): random requests (methods,
 * paths, headers, bodies, raw bytes, HTTP/2) against an in-process gateway with healthy backends.
 * Passes when no response is an unexpected 5xx, no body carries a stack trace, the gateway still
 * answers, and memory stays bounded. The default configuration (fast path on) is fuzzed with
 * 10,000 requests against a gateway process by the fault battery's R11
 * (tests/faults/scenarios/r11-gateway-input.ts), which shares this generator.
 */

// 2,000: the protocol suites cover this path too; enough to cross every generator branch often,
// and keeps the file under ~20 s on a loaded 2-core machine.
const REQUESTS = Number(process.env.FUZZ_N ?? 2_000);
const CONCURRENCY = 16;
const SEED = 0x5eed + 2;

function gcNow(): void {
  setFlagsFromString("--expose-gc");
  (runInNewContext("gc") as () => void)();
}

describe("R11 fuzz", () => {
  let backends: FakeBackends;
  let valid: string;
  let expired: string;
  beforeAll(async () => {
    backends = await startFakeBackends();
    valid = await testToken("fuzzer", ["orders:read", "orders:write", "payments:read", "notifications:read"]);
    expired = await testToken("fuzzer", ["orders:read"], { ttlSec: -60 });
  });
  afterAll(() => backends.close());

  it("survives random requests without unexpected 5xx (fast path off)", async () => {
    const gw: TestGateway = await startTestGateway(backends, { fastPath: false, corsOrigins: ["https://shop.example.com"], deadlines: { maxMs: 5_000 } });
    try {
      gcNow();
      const before = process.memoryUsage();
      const report = await fuzzGateway(gw.port, { total: REQUESTS, concurrency: CONCURRENCY, seed: SEED, ids: ["p1", "o1"], tokens: { valid, expired } });
      gcNow();
      const after = process.memoryUsage();
      // The gateway still serves after the storm.
      const health = await fetch(`${gw.url}/healthz`);
      expect(health.status).toBe(200);
      const ok = await fetch(`${gw.url}/v1/products/p1`);
      expect(ok.status).toBe(200);

      const summary = { elapsedMs: report.elapsedMs, statuses: report.statuses, heapGrowthMiB: (after.heapUsed - before.heapUsed) / 2 ** 20, rssGrowthMiB: (after.rss - before.rss) / 2 ** 20 };
      process.stdout.write(`fuzz (connect): ${JSON.stringify(summary)}\n`);
      expect(report.unexpected.slice(0, 5)).toEqual([]);
      expect(report.sent).toBeGreaterThanOrEqual(REQUESTS);
      // Generous bounds: this process also holds jest, the backends and the clients.
      expect(summary.heapGrowthMiB).toBeLessThan(64);
      expect(summary.rssGrowthMiB).toBeLessThan(256);
      // Enough of the traffic got past parsing to exercise forwarding.
      expect(report.statuses[200] ?? 0).toBeGreaterThan(REQUESTS / 50);
    } finally {
      await gw.close();
    }
    // ~5 s on an idle 2-core machine; the margin is for CI running other suites beside it.
  }, 120_000);
});
