import { jose } from "../mesh/auth/jose.js";
import { randomUUID } from "node:crypto";
import { parseArgs } from "node:util";

/**
 * Mints HS256 development tokens the gateway accepts when it runs with MESHWORK_JWT_SECRET.
 *
 *   npx tsx gateway/dev-token.ts --sub alice --scope "orders:read orders:write"
 *
 * Options: --sub (required), --scope (space-separated), --ttl seconds (default 3600), --secret
 * (default $MESHWORK_JWT_SECRET), --iss / --aud (default $MESHWORK_JWT_ISSUER / $MESHWORK_JWT_AUDIENCE).
 * Prints the JWT on stdout. Never use the development secret in production.
 */

/** What {@link mintDevToken} puts into a token. */
export interface DevTokenOptions {
  /** HS256 secret, at least 32 bytes (the gateway's MESHWORK_JWT_SECRET). */
  secret: string;
  /** `sub`: the caller, e.g. a customer id. */
  subject: string;
  /** Scopes, joined into the space-separated `scope` claim. */
  scopes?: string[];
  /** Lifetime in seconds (default 3600: one working session). */
  ttlSec?: number;
  issuer?: string;
  audience?: string;
}

/** Signs a development JWT (HS256, with `jti`, `iat` and `exp`). */
export async function mintDevToken(opts: DevTokenOptions): Promise<string> {
  if (Buffer.byteLength(opts.secret) < 32) throw new Error("the secret must be at least 32 bytes (HS256)");
  const jwt = new jose.SignJWT({ scope: (opts.scopes ?? []).join(" ") })
    .setProtectedHeader({ alg: "HS256", typ: "JWT" })
    .setSubject(opts.subject)
    .setJti(randomUUID())
    .setIssuedAt()
    .setExpirationTime(`${opts.ttlSec ?? 3600}s`);
  if (opts.issuer) jwt.setIssuer(opts.issuer);
  if (opts.audience) jwt.setAudience(opts.audience);
  return jwt.sign(new TextEncoder().encode(opts.secret));
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      sub: { type: "string" },
      scope: { type: "string", default: "" },
      ttl: { type: "string", default: "3600" },
      secret: { type: "string" },
      iss: { type: "string" },
      aud: { type: "string" },
    },
  });
  const secret = values.secret ?? process.env.MESHWORK_JWT_SECRET;
  if (!values.sub) throw new Error("--sub is required");
  if (!secret) throw new Error("--secret or MESHWORK_JWT_SECRET is required");
  if (!/^\d+$/.test(values.ttl)) throw new Error(`--ttl must be whole seconds, got "${values.ttl}"`);
  const token = await mintDevToken({
    secret,
    subject: values.sub,
    scopes: values.scope.split(/\s+/).filter(Boolean),
    ttlSec: Number(values.ttl),
    issuer: values.iss ?? process.env.MESHWORK_JWT_ISSUER,
    audience: values.aud ?? process.env.MESHWORK_JWT_AUDIENCE,
  });
  process.stdout.write(token + "\n");
}

if (require.main === module) {
  main().catch((e: unknown) => {
    process.stderr.write(`dev-token: ${(e as Error).message}\n`);
    process.exit(2);
  });
}
