import { execFile } from "node:child_process";
import { join } from "node:path";
import { TokenVerifier } from "./auth.js";
import { mintDevToken } from "./dev-token.js";

const SECRET = "dev-secret-for-the-token-test-0123456789";

function tsx(file: string, args: string[], env: NodeJS.ProcessEnv): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [require.resolve("tsx/cli"), join(__dirname, file), ...args], { env, timeout: 30_000 }, (err, stdout, stderr) =>
      resolve({ code: err ? Number((err as { code?: number }).code ?? 1) : 0, stdout, stderr }),
    );
  });
}

describe("development tokens", () => {
  it("mints a token the gateway's verifier accepts", async () => {
    const token = await mintDevToken({ secret: SECRET, subject: "alice", scopes: ["orders:read", "orders:write"], issuer: "dev", audience: "shop" });
    const identity = await new TokenVerifier({ secret: SECRET, issuer: "dev", audience: "shop" }).verify(token);
    expect(identity).toMatchObject({ subject: "alice", scopes: ["orders:read", "orders:write"] });
    expect(identity.tokenId).toMatch(/^[0-9a-f-]{36}$/);
  });

  it("prints one from the command line", async () => {
    const r = await tsx("dev-token.ts", ["--sub", "bob", "--scope", "orders:read notifications:read"], { PATH: process.env.PATH, MESHWORK_JWT_SECRET: SECRET });
    expect(r.code).toBe(0);
    const identity = await new TokenVerifier({ secret: SECRET }).verify(r.stdout.trim());
    expect(identity).toMatchObject({ subject: "bob", scopes: ["orders:read", "notifications:read"] });
  });

  it("the gateway process fails fast naming a missing variable", async () => {
    const r = await tsx("main.ts", [], { PATH: process.env.PATH });
    expect(r.code).toBe(1);
    expect(r.stderr).toContain("MESHWORK_JWT_SECRET");
  });
});
