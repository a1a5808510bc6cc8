import { loadConfig } from "./config.js";

describe("inventory config", () => {
  it("uses the documented defaults", () => {
    const c = loadConfig({});
    expect(c).toMatchObject({ sweepIntervalMs: 1_000, lowStockThreshold: 5 });
    expect(c.runtime.serviceName).toBe("inventory");
    expect(c.runtime.natsUrl).toBeUndefined();
  });

  it("fails fast naming the bad variable", () => {
    expect(() => loadConfig({ INVENTORY_SWEEP_INTERVAL_MS: "soon" })).toThrow(/INVENTORY_SWEEP_INTERVAL_MS/);
    expect(() => loadConfig({ INVENTORY_LOW_STOCK_THRESHOLD: "-1" })).toThrow(/INVENTORY_LOW_STOCK_THRESHOLD/);
    expect(loadConfig({ INVENTORY_SWEEP_INTERVAL_MS: "250" }).sweepIntervalMs).toBe(250);
  });
});
