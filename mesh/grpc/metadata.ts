import { Metadata } from "@grpc/grpc-js";

// HTTP/2 pseudo and connection headers that grpc-js manages itself and refuses from callers.
const RESERVED = new Set(["content-type", "te", "user-agent", "grpc-timeout", "grpc-encoding", "grpc-accept-encoding", "grpc-status", "grpc-message"]);

/** Copies fetch-style headers into grpc-js metadata; `-bin` values are base64 on the Headers side. */
export function headersToMetadata(headers: Headers | HeadersInit | undefined, into = new Metadata()): Metadata {
  if (headers === undefined) return into;
  const h = headers instanceof Headers ? headers : new Headers(headers);
  h.forEach((value, key) => {
    if (RESERVED.has(key) || key.startsWith(":")) return;
    if (key.endsWith("-bin")) {
      for (const part of value.split(",")) into.add(key, Buffer.from(part.trim(), "base64"));
    } else {
      into.add(key, value);
    }
  });
  return into;
}

/**
 * Sets one fetch-style header on grpc-js metadata, replacing its values, by the rules of
 * {@link headersToMetadata} (reserved headers dropped, `-bin` values base64): lets a propagator
 * write to a call's metadata without a Headers object in between.
 */
export function setMetadataHeader(md: Metadata, key: string, value: string): void {
  const k = key.toLowerCase();
  if (RESERVED.has(k) || k.startsWith(":")) return;
  if (k.endsWith("-bin")) {
    md.remove(k);
    for (const part of value.split(",")) md.add(k, Buffer.from(part.trim(), "base64"));
  } else {
    md.set(k, value);
  }
}

/** Copies grpc-js metadata into fetch-style headers; binary values become base64. */
export function metadataToHeaders(md: Metadata | undefined, into = new Headers()): Headers {
  if (md === undefined) return into;
  const map = md.getMap();
  for (const key of Object.keys(map)) {
    for (const v of md.get(key)) {
      into.append(key, typeof v === "string" ? v : Buffer.from(v).toString("base64"));
    }
  }
  return into;
}
