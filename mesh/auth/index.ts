/**
 * Caller identity inside the mesh: the gateway signs the verified caller into the
 * `meshwork-identity` header; services verify it with {@link identityMiddleware} and read it with
 * {@link callerIdentity} or `ctx.values.get(IDENTITY_KEY)`.
 */
export {
  IDENTITY_HEADER,
  IDENTITY_KEY,
  signIdentity,
  verifyIdentity,
  identityMiddleware,
  callerIdentity,
  type Identity,
  type IdentityKey,
  type SignIdentityOptions,
  type IdentityMiddlewareOptions,
} from "./identity.js";
