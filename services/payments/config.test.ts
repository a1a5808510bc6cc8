import { loadConfig } from "./config.js";

describe("payments config", () => {
  it("uses the documented defaults", () => {
    const c = loadConfig({});
    expect(c.slowCardDelayMs).toBe(1_500);
    expect(c.runtime.serviceName).toBe("payments");
  });

  it("fails fast naming the bad variable", () => {
    expect(() => loadConfig({ PAYMENTS_SLOW_CARD_DELAY_MS: "1.5s" })).toThrow(/PAYMENTS_SLOW_CARD_DELAY_MS/);
    expect(loadConfig({ PAYMENTS_SLOW_CARD_DELAY_MS: "0" }).slowCardDelayMs).toBe(0);
  });
});
