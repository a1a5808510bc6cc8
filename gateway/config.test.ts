import { CONFIG_DEFAULTS, loadConfig } from "./config.js";

const base = { MESHWORK_JWT_SECRET: "s".repeat(32), MESHWORK_IDENTITY_KEY: "k".repeat(32) };

describe("gateway config", () => {
  it("applies the documented defaults", () => {
    expect(loadConfig(base)).toEqual({
      port: 8080,
      host: "0.0.0.0",
      jwt: { secret: "s".repeat(32), jwksFile: undefined, jwksUrl: undefined, issuer: undefined, audience: undefined },
      identityKey: "k".repeat(32),
      corsOrigins: [],
      bodyLimitBytes: CONFIG_DEFAULTS.bodyLimitBytes,
      defaultDeadlineMs: 10_000,
      maxDeadlineMs: 30_000,
      maxStreamMs: 3_600_000,
      rateLimit: { rps: 50, burst: 100 },
      fastPath: true,
    });
  });

  it("parses every variable", () => {
    const c = loadConfig({
      ...base,
      MESHWORK_GATEWAY_PORT: "9000",
      MESHWORK_JWKS_URL: "https://idp.example.com/.well-known/jwks.json",
      MESHWORK_JWT_ISSUER: "https://idp.example.com",
      MESHWORK_JWT_AUDIENCE: "shop",
      MESHWORK_CORS_ORIGINS: "https://shop.example.com, http://localhost:5173",
      MESHWORK_BODY_LIMIT_BYTES: "2048",
      MESHWORK_DEFAULT_DEADLINE_MS: "500",
      MESHWORK_MAX_DEADLINE_MS: "1000",
      MESHWORK_RATE_LIMIT_RPS: "5",
      MESHWORK_RATE_LIMIT_BURST: "7",
      MESHWORK_GATEWAY_FAST_PATH: "false",
    });
    expect(c).toMatchObject({
      port: 9000,
      corsOrigins: ["https://shop.example.com", "http://localhost:5173"],
      bodyLimitBytes: 2048,
      defaultDeadlineMs: 500,
      maxDeadlineMs: 1000,
      rateLimit: { rps: 5, burst: 7 },
      fastPath: false,
      jwt: { jwksUrl: "https://idp.example.com/.well-known/jwks.json", issuer: "https://idp.example.com", audience: "shop" },
    });
  });

  it.each([
    [{ MESHWORK_IDENTITY_KEY: "k".repeat(32) }, "MESHWORK_JWT_SECRET"],
    [{ MESHWORK_JWT_SECRET: "s".repeat(32) }, "MESHWORK_IDENTITY_KEY"],
    [{ ...base, MESHWORK_JWT_SECRET: "short" }, "MESHWORK_JWT_SECRET"],
    [{ ...base, MESHWORK_GATEWAY_PORT: "http" }, "MESHWORK_GATEWAY_PORT"],
    [{ ...base, MESHWORK_GATEWAY_PORT: "70000" }, "MESHWORK_GATEWAY_PORT"],
    [{ ...base, MESHWORK_CORS_ORIGINS: "https://shop.example.com/path" }, "MESHWORK_CORS_ORIGINS"],
    [{ ...base, MESHWORK_JWKS_URL: "not a url" }, "MESHWORK_JWKS_URL"],
    [{ ...base, MESHWORK_DEFAULT_DEADLINE_MS: "60000" }, "MESHWORK_DEFAULT_DEADLINE_MS"],
    [{ ...base, MESHWORK_BODY_LIMIT_BYTES: "0" }, "MESHWORK_BODY_LIMIT_BYTES"],
    [{ ...base, MESHWORK_GATEWAY_FAST_PATH: "yes" }, "MESHWORK_GATEWAY_FAST_PATH"],
  ])("fails fast naming the variable (%#)", (env, name) => {
    expect(() => loadConfig(env)).toThrow(name);
  });
});
