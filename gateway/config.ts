/**
 * Gateway configuration, parsed once from the environment. A bad or missing value fails at start
 * with an error naming the variable.
 */

/** Typed gateway configuration. */
export interface GatewayConfig {
  /** MESHWORK_GATEWAY_PORT (default 8080). One port serves HTTP/1.1 and h2c. */
  port: number;
  /** MESHWORK_GATEWAY_HOST (default 0.0.0.0). */
  host: string;
  jwt: {
    /** MESHWORK_JWT_SECRET: HS256 secret (≥ 32 characters) for development tokens. */
    secret?: string;
    /** MESHWORK_JWKS_FILE: path of a JWKS JSON file with RS256/ES256 public keys. */
    jwksFile?: string;
    /** MESHWORK_JWKS_URL: URL of the identity provider's JWKS (fetched and refreshed on unknown kid). */
    jwksUrl?: string;
    /** MESHWORK_JWT_ISSUER: required `iss`, if set. */
    issuer?: string;
    /** MESHWORK_JWT_AUDIENCE: required `aud`, if set. */
    audience?: string;
  };
  /** MESHWORK_IDENTITY_KEY: mesh-internal HS256 key (≥ 32 characters) for `meshwork-identity`. */
  identityKey: string;
  /** MESHWORK_CORS_ORIGINS: comma-separated allowed origins ("*" allows any); default none. */
  corsOrigins: string[];
  /** MESHWORK_BODY_LIMIT_BYTES (default 1 MiB). */
  bodyLimitBytes: number;
  /** MESHWORK_DEFAULT_DEADLINE_MS (default 10 s): a unary call's deadline when neither client nor contract sets one. */
  defaultDeadlineMs: number;
  /** MESHWORK_MAX_DEADLINE_MS (default 30 s): no unary call runs longer, whatever the client asks. */
  maxDeadlineMs: number;
  /** MESHWORK_MAX_STREAM_MS (default 1 h): no server stream runs longer; clients reconnect. */
  maxStreamMs: number;
  /** MESHWORK_RATE_LIMIT_RPS / MESHWORK_RATE_LIMIT_BURST per caller; rps 0 disables limiting. */
  rateLimit: { rps: number; burst: number };
  /** MESHWORK_GATEWAY_FAST_PATH (default true): serve Connect unary JSON and REST unary on plain node:http. */
  fastPath: boolean;
}

export const CONFIG_DEFAULTS = {
  port: 8080,
  // 1 MiB: the largest shop request (an order with 100 lines) is a few KiB; 1 MiB leaves room
  // for growth while capping what one request can make the gateway buffer.
  bodyLimitBytes: 1024 * 1024,
  // 10 s: the slowest contract deadline (CreateOrder) is 10 s; anything without one gets the same.
  defaultDeadlineMs: 10_000,
  // 30 s: a browser user has given up long before; bounds the work an abandoned call can hold.
  maxDeadlineMs: 30_000,
  // 1 h: watch streams are resumable (clients reconnect and re-list), so a cap costs one
  // reconnect per hour and bounds how long a forgotten tab holds a backend stream.
  maxStreamMs: 3_600_000,
  // 50/s sustained per caller is far above what a person clicking generates, yet one abusive
  // caller gets at most a small share of a gateway that serves a few thousand requests/s.
  rateLimitRps: 50,
  // 100: a page load fires 10-20 calls at once; 100 covers several loads plus stream reconnects.
  rateLimitBurst: 100,
} as const;

/** Parses the gateway configuration from `env`; throws naming the offending variable. */
export function loadConfig(env: NodeJS.ProcessEnv = process.env): GatewayConfig {
  const str = (name: string): string | undefined => {
    const v = env[name];
    return v === undefined || v.trim() === "" ? undefined : v.trim();
  };
  const int = (name: string, def: number, min: number, max = Number.MAX_SAFE_INTEGER): number => {
    const v = str(name);
    if (v === undefined) return def;
    if (!/^\d+$/.test(v)) throw new Error(`${name} must be a whole number, got "${v}"`);
    const n = Number(v);
    if (n < min || n > max) throw new Error(`${name} must be between ${min} and ${max}, got ${n}`);
    return n;
  };
  const secretOf = (name: string, required: boolean): string | undefined => {
    const v = str(name);
    if (v === undefined) {
      if (required) throw new Error(`${name} is required`);
      return undefined;
    }
    // RFC 7518 §3.2: HS256 keys must be at least 256 bits.
    if (Buffer.byteLength(v) < 32) throw new Error(`${name} must be at least 32 bytes long, got ${Buffer.byteLength(v)}`);
    return v;
  };

  const jwt = {
    secret: secretOf("MESHWORK_JWT_SECRET", false),
    jwksFile: str("MESHWORK_JWKS_FILE"),
    jwksUrl: str("MESHWORK_JWKS_URL"),
    issuer: str("MESHWORK_JWT_ISSUER"),
    audience: str("MESHWORK_JWT_AUDIENCE"),
  };
  if (!jwt.secret && !jwt.jwksFile && !jwt.jwksUrl) throw new Error("one of MESHWORK_JWT_SECRET, MESHWORK_JWKS_FILE or MESHWORK_JWKS_URL is required");
  if (jwt.jwksUrl) {
    let u: URL;
    try {
      u = new URL(jwt.jwksUrl);
    } catch {
      throw new Error(`MESHWORK_JWKS_URL is not a URL: "${jwt.jwksUrl}"`);
    }
    if (u.protocol !== "https:" && u.protocol !== "http:") throw new Error(`MESHWORK_JWKS_URL must be http(s), got "${u.protocol}"`);
  }

  const corsOrigins = (str("MESHWORK_CORS_ORIGINS") ?? "")
    .split(",")
    .map((s) => s.trim())
    .filter(Boolean);
  for (const o of corsOrigins) {
    if (o === "*") continue;
    let u: URL | undefined;
    try {
      u = new URL(o);
    } catch {
      u = undefined;
    }
    // An origin is scheme://host[:port] with nothing after it; anything else never matches a browser's Origin.
    if (!u || u.origin !== o) throw new Error(`MESHWORK_CORS_ORIGINS entry "${o}" is not an origin like https://shop.example.com`);
  }

  const maxDeadlineMs = int("MESHWORK_MAX_DEADLINE_MS", CONFIG_DEFAULTS.maxDeadlineMs, 1);
  const defaultDeadlineMs = int("MESHWORK_DEFAULT_DEADLINE_MS", CONFIG_DEFAULTS.defaultDeadlineMs, 1);
  if (defaultDeadlineMs > maxDeadlineMs) throw new Error(`MESHWORK_DEFAULT_DEADLINE_MS (${defaultDeadlineMs}) must not exceed MESHWORK_MAX_DEADLINE_MS (${maxDeadlineMs})`);
  const rps = int("MESHWORK_RATE_LIMIT_RPS", CONFIG_DEFAULTS.rateLimitRps, 0);
  const burst = int("MESHWORK_RATE_LIMIT_BURST", Math.max(CONFIG_DEFAULTS.rateLimitBurst, rps), 1);
  const fast = str("MESHWORK_GATEWAY_FAST_PATH") ?? "true";
  if (fast !== "true" && fast !== "false") throw new Error(`MESHWORK_GATEWAY_FAST_PATH must be true or false, got "${fast}"`);

  return {
    port: int("MESHWORK_GATEWAY_PORT", CONFIG_DEFAULTS.port, 0, 65535),
    host: str("MESHWORK_GATEWAY_HOST") ?? "0.0.0.0",
    jwt,
    identityKey: secretOf("MESHWORK_IDENTITY_KEY", true)!,
    corsOrigins,
    // 16 MiB ceiling: matches nothing the shop needs and keeps a typo from disabling the limit.
    bodyLimitBytes: int("MESHWORK_BODY_LIMIT_BYTES", CONFIG_DEFAULTS.bodyLimitBytes, 1, 16 * 1024 * 1024),
    defaultDeadlineMs,
    maxDeadlineMs,
    maxStreamMs: int("MESHWORK_MAX_STREAM_MS", CONFIG_DEFAULTS.maxStreamMs, 1),
    rateLimit: { rps, burst },
    fastPath: fast === "true",
  };
}
