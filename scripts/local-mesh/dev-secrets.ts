import { randomBytes } from "node:crypto";
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";

/** The two HS256 keys a local mesh runs with. */
export interface DevSecrets {
  /** The gateway's MESHWORK_JWT_SECRET: what `meshwork token` signs development tokens with. */
  jwtSecret: string;
  /** MESHWORK_IDENTITY_KEY: signs the caller identity the gateway passes to services. */
  identityKey: string;
}

/** Where a local mesh keeps its development keys. */
export function devSecretsFile(dataDir: string): string {
  return join(dataDir, "dev-secrets.json");
}

/**
 * The development keys of the local mesh in `dataDir`: read from `dev-secrets.json`, or created
 * there (random, file mode 0600) on the first start, so tokens minted by `meshwork token` keep
 * working across restarts while no two machines share a key.
 */
export function loadOrCreateDevSecrets(dataDir: string): DevSecrets {
  const existing = readDevSecrets(dataDir);
  if (existing) return existing;
  mkdirSync(dataDir, { recursive: true });
  // 32 random bytes: the HS256 minimum key size (RFC 7518 §3.2), as 64 hex characters.
  const secrets: DevSecrets = { jwtSecret: randomBytes(32).toString("hex"), identityKey: randomBytes(32).toString("hex") };
  // "wx": two launchers starting at once cannot overwrite each other's keys.
  try {
    writeFileSync(devSecretsFile(dataDir), JSON.stringify(secrets, null, 2) + "\n", { mode: 0o600, flag: "wx" });
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === "EEXIST") return readDevSecrets(dataDir)!;
    throw e;
  }
  return secrets;
}

/** The development keys in `dataDir`, or undefined when the local mesh never ran there. */
export function readDevSecrets(dataDir: string): DevSecrets | undefined {
  let text: string;
  try {
    text = readFileSync(devSecretsFile(dataDir), "utf8");
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === "ENOENT") return undefined;
    throw e;
  }
  const o = JSON.parse(text) as Partial<DevSecrets>;
  if (typeof o.jwtSecret !== "string" || typeof o.identityKey !== "string") {
    throw new Error(`${devSecretsFile(dataDir)} must hold {"jwtSecret": "...", "identityKey": "..."}; delete it to create new keys`);
  }
  return { jwtSecret: o.jwtSecret, identityKey: o.identityKey };
}
