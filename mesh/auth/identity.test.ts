import { Code, createContextValues, createHandlerContext, type HandlerContext } from "@connectrpc/connect";
import { CatalogService } from "../../gen/catalog/v1/catalog_pb.js";
import { callerIdentity, IDENTITY_HEADER, IDENTITY_KEY, identityMiddleware, signIdentity, verifyIdentity, type Identity } from "./index.js";
import { jose } from "./jose.js";

const KEY = "mesh-identity-key-for-tests-0123456789abcdef";

function ctxWith(header: Record<string, string>): HandlerContext {
  return createHandlerContext({
    service: CatalogService,
    method: CatalogService.method.getProduct,
    protocolName: "grpc",
    requestMethod: "POST",
    url: "/",
    requestHeader: header,
    contextValues: createContextValues(),
  });
}

describe("signed identity", () => {
  const alice: Identity = { subject: "alice", scopes: ["orders:read", "orders:write"], tokenId: "t-1", expiresAt: Math.floor(Date.now() / 1000) + 3600 };

  it("round-trips subject, scopes, token id and expiry", async () => {
    expect(await verifyIdentity(await signIdentity(alice, KEY), KEY)).toEqual(alice);
    expect(await verifyIdentity(await signIdentity({ subject: "bob", scopes: [] }, KEY), KEY)).toEqual({ subject: "bob", scopes: [] });
  });

  it("never outlives the caller's token", async () => {
    const soon = Math.floor(Date.now() / 1000) + 10;
    const jws = await signIdentity({ ...alice, expiresAt: soon }, KEY, { ttlSec: 60 });
    expect(jose.decodeJwt(jws).exp).toBe(soon);
  });

  it.each([
    ["another key", async () => signIdentity(alice, "some-other-key-that-is-long-enough-000000")],
    ["no signature (alg none)", async () => new jose.UnsecuredJWT({ scope: "" }).setSubject("alice").setIssuer("meshwork-gateway").setAudience("meshwork-mesh").setExpirationTime("1m").encode()],
    ["an expired identity", async () => signIdentity({ ...alice, expiresAt: Math.floor(Date.now() / 1000) - 60 }, KEY)],
    ["a user token signed with the mesh key", async () => new jose.SignJWT({}).setProtectedHeader({ alg: "HS256" }).setSubject("alice").setExpirationTime("1m").sign(new TextEncoder().encode(KEY))],
    ["garbage", async () => "a.b.c"],
  ])("refuses %s with Unauthenticated", async (_n, make) => {
    await expect(verifyIdentity(await make(), KEY)).rejects.toMatchObject({ code: Code.Unauthenticated });
  });
});

describe("identityMiddleware", () => {
  const next = jest.fn(async () => undefined);
  beforeEach(() => next.mockClear());

  it("puts a verified identity into ctx.values", async () => {
    const ctx = ctxWith({ [IDENTITY_HEADER]: await signIdentity({ subject: "alice", scopes: ["a"] }, KEY) });
    await identityMiddleware({ key: KEY })(ctx, next);
    expect(ctx.values.get(IDENTITY_KEY)).toEqual({ subject: "alice", scopes: ["a"] });
    expect(callerIdentity(ctx).subject).toBe("alice");
    expect(next).toHaveBeenCalledTimes(1);
  });

  it("passes anonymous calls unless required", async () => {
    const ctx = ctxWith({});
    await identityMiddleware({ key: KEY })(ctx, next);
    expect(ctx.values.get(IDENTITY_KEY)).toBeUndefined();
    expect(() => callerIdentity(ctx)).toThrow(expect.objectContaining({ code: Code.Unauthenticated }));
    await expect(identityMiddleware({ key: KEY, required: true })(ctxWith({}), next)).rejects.toMatchObject({ code: Code.Unauthenticated });
    expect(next).toHaveBeenCalledTimes(1);
  });

  it("refuses a forged header before the handler runs", async () => {
    const forged = await signIdentity({ subject: "mallory", scopes: [] }, "some-other-key-that-is-long-enough-000000");
    await expect(identityMiddleware({ key: KEY })(ctxWith({ [IDENTITY_HEADER]: forged }), next)).rejects.toMatchObject({ code: Code.Unauthenticated });
    expect(next).not.toHaveBeenCalled();
  });
});
