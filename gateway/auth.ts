import { Code, ConnectError } from "@connectrpc/connect";
import type { JSONWebKeySet, JWTPayload, JWTVerifyGetKey } from "jose";
import { jose } from "../mesh/auth/jose.js";
import type { Identity } from "../mesh/auth/index.js";

/** Where bearer tokens' keys come from, and which claims must match. */
export interface JwtOptions {
  /** HS256 secret (≥ 32 bytes), e.g. for development tokens from gateway/dev-token.ts. */
  secret?: string;
  /** A JWKS document with RS256/ES256 public keys (e.g. read from MESHWORK_JWKS_FILE). */
  jwks?: JSONWebKeySet;
  /** URL of a JWKS; refetched (at most every 30 s) when a token names an unknown `kid`, so key rotation works. */
  jwksUrl?: string;
  /** Required `iss`. */
  issuer?: string;
  /** Required `aud`. */
  audience?: string;
  /** Least time between two fetches of `jwksUrl` (default 30 s; tests shorten it). */
  jwksCooldownMs?: number;
}

// Tolerates clock differences between the identity provider and the gateway.
const CLOCK_TOLERANCE_SEC = 5;
// The asymmetric algorithms accepted from a JWKS; `none` and HS* never are (no alg confusion).
const JWKS_ALGORITHMS = ["RS256", "ES256"];
// A verified token is reused for at most 60 s: a key removed from the JWKS stops being honoured
// within a minute, while a busy caller costs one signature check per minute instead of per call.
const CACHE_TTL_MS = 60_000;
// ~1 KiB per entry: bounds the cache at ~10 MiB however many distinct tokens arrive.
const CACHE_MAX = 10_000;
// Remote JWKS: refetch at most every 30 s on an unknown kid (stops a kid-spraying client from
// hammering the provider), and at the latest every 10 min so removed keys disappear.
const JWKS_COOLDOWN_MS = 30_000;
const JWKS_MAX_AGE_MS = 600_000;
// A provider that does not answer in 5 s is down; the call fails Unauthenticated instead of hanging.
const JWKS_TIMEOUT_MS = 5_000;

/**
 * Verifies bearer tokens (signature, `exp`, `nbf`, `iss`, `aud`) with jose and turns them into an
 * {@link Identity}. Scopes come from a space-separated `scope` claim or an `scp` array.
 */
export class TokenVerifier {
  private readonly getKey: JWTVerifyGetKey;
  private readonly algorithms: string[];
  private readonly cache = new Map<string, { identity: Identity; untilMs: number }>();
  private hmacKey: Promise<CryptoKey> | undefined;

  constructor(private readonly opts: JwtOptions) {
    const jwks = opts.jwksUrl
      ? jose.createRemoteJWKSet(new URL(opts.jwksUrl), { cooldownDuration: opts.jwksCooldownMs ?? JWKS_COOLDOWN_MS, cacheMaxAge: JWKS_MAX_AGE_MS, timeoutDuration: JWKS_TIMEOUT_MS })
      : opts.jwks
        ? jose.createLocalJWKSet(opts.jwks)
        : undefined;
    // A secret as CryptoKey imported once: jose would otherwise import raw bytes on every call.
    if (opts.secret) {
      const bytes = new TextEncoder().encode(opts.secret);
      this.hmacKey = crypto.subtle.importKey("raw", bytes, { name: "HMAC", hash: "SHA-256" }, false, ["verify"]);
    }
    this.algorithms = [...(opts.secret ? ["HS256"] : []), ...(jwks ? JWKS_ALGORITHMS : [])];
    // The key is chosen by the token's alg, and each alg family only ever gets its own key kind.
    this.getKey = async (header, token) => {
      if (header.alg === "HS256" && this.hmacKey) return this.hmacKey;
      if (jwks && header.alg !== "HS256") return jwks(header, token);
      throw new ConnectError(`token algorithm ${String(header.alg)} is not accepted`, Code.Unauthenticated);
    };
    if (this.algorithms.length === 0) throw new Error("TokenVerifier needs a secret, a JWKS or a JWKS URL");
  }

  /** The identity in `token`; rejects with Unauthenticated if the token is not valid now. */
  async verify(token: string): Promise<Identity> {
    const now = Date.now();
    const hit = this.cache.get(token);
    if (hit && hit.untilMs > now) return hit.identity;
    let payload: JWTPayload;
    try {
      ({ payload } = await jose.jwtVerify(token, this.getKey, {
        algorithms: this.algorithms,
        issuer: this.opts.issuer,
        audience: this.opts.audience,
        clockTolerance: CLOCK_TOLERANCE_SEC,
        requiredClaims: ["sub"],
      }));
    } catch (e) {
      throw e instanceof ConnectError ? e : new ConnectError(`invalid bearer token: ${(e as Error).message}`, Code.Unauthenticated);
    }
    const identity: Identity = { subject: String(payload.sub), scopes: scopesOf(payload) };
    if (typeof payload.jti === "string") identity.tokenId = payload.jti;
    if (typeof payload.exp === "number") identity.expiresAt = payload.exp;
    const untilMs = Math.min(now + CACHE_TTL_MS, identity.expiresAt !== undefined ? identity.expiresAt * 1000 : Infinity);
    if (this.cache.size >= CACHE_MAX) evict(this.cache, now);
    this.cache.set(token, { identity, untilMs });
    return identity;
  }
}

function scopesOf(p: JWTPayload): string[] {
  const out: string[] = [];
  if (typeof p.scope === "string") out.push(...p.scope.split(" ").filter(Boolean));
  if (Array.isArray(p.scp)) out.push(...p.scp.filter((s): s is string => typeof s === "string"));
  else if (typeof p.scp === "string") out.push(...p.scp.split(" ").filter(Boolean));
  return [...new Set(out)];
}

function evict(cache: Map<string, { untilMs: number }>, now: number): void {
  for (const [k, v] of cache) if (v.untilMs <= now) cache.delete(k);
  if (cache.size >= CACHE_MAX) {
    // Still full of live tokens: drop the oldest half (insertion order) rather than grow.
    let n = cache.size / 2;
    for (const k of cache.keys()) {
      if (n-- <= 0) break;
      cache.delete(k);
    }
  }
}

/** The token of an `Authorization: Bearer <token>` header, undefined when there is none. */
export function bearerToken(authorization: string | undefined | null): string | undefined {
  if (!authorization) return undefined;
  const m = /^Bearer[ ]+([A-Za-z0-9\-_.~+/]+=*)\s*$/i.exec(authorization);
  if (!m) throw new ConnectError("authorization header is not a Bearer token", Code.Unauthenticated);
  return m[1];
}

/** Throws PermissionDenied naming the first scope `identity` lacks. */
export function requireScopes(identity: Identity, scopes: readonly string[], what: string): void {
  for (const s of scopes) {
    if (!identity.scopes.includes(s)) throw new ConnectError(`${what} needs scope "${s}"`, Code.PermissionDenied);
  }
}
