import { RateLimiter } from "./rate-limit.js";

describe("RateLimiter", () => {
  it("allows the burst, then one call per 1/rps, with the wait until the next token", () => {
    const rl = new RateLimiter({ rps: 10, burst: 3 });
    expect([rl.take("a", 0), rl.take("a", 0), rl.take("a", 0)]).toEqual([0, 0, 0]);
    expect(rl.take("a", 0)).toBe(100);
    expect(rl.take("a", 50)).toBe(50);
    expect(rl.take("a", 100)).toBe(0);
    // Another key has its own bucket.
    expect(rl.take("b", 100)).toBe(0);
  });

  it("refills to the burst at most", () => {
    const rl = new RateLimiter({ rps: 10, burst: 2 });
    rl.take("a", 0);
    rl.take("a", 0);
    expect([rl.take("a", 60_000), rl.take("a", 60_000), rl.take("a", 60_000)]).toEqual([0, 0, 100]);
  });

  it("never limits with rps 0", () => {
    const rl = new RateLimiter({ rps: 0, burst: 1 });
    for (let i = 0; i < 100; i++) expect(rl.take("a", 0)).toBe(0);
    expect(rl.size).toBe(0);
  });

  it("keeps the key table bounded", () => {
    const rl = new RateLimiter({ rps: 1, burst: 1, maxKeys: 100 });
    for (let i = 0; i < 10_000; i++) rl.take(`k${i}`, i);
    expect(rl.size).toBeLessThanOrEqual(100);
  });
});
