#!/usr/bin/env node
// @ts-check
"use strict";
/**
 * Container health check for Docker/compose, which has no native gRPC probe (Kubernetes uses its
 * own `grpc:` and `httpGet:` probes instead):
 *
 *   node deploy/healthcheck.js grpc [host:]port   grpc.health.v1.Health/Check for service "" answers SERVING
 *   node deploy/healthcheck.js http <url>         GET <url> answers 2xx
 *
 * Exit 0 healthy, 1 unhealthy, 64 bad usage. Plain JavaScript because deploy/ is not compiled:
 * the image runs it as is, with @grpc/grpc-js from the production dependencies.
 */
const { Client, credentials } = require("@grpc/grpc-js");

// 2 s: a healthy process answers in milliseconds; compose's own timeout (5 s in compose.yaml) must
// be longer so that a slow answer is reported by us, with a reason, and not killed silently.
const TIMEOUT_MS = 2_000;
// grpc.health.v1.HealthCheckResponse.ServingStatus.SERVING
const SERVING = 1;
const STATUS_NAMES = ["UNKNOWN", "SERVING", "NOT_SERVING", "SERVICE_UNKNOWN"];

/** Reads field 1 (status, a varint) of an encoded HealthCheckResponse; absent means 0 (UNKNOWN). */
function decodeStatus(/** @type {Buffer} */ buf) {
  let i = 0;
  while (i < buf.length) {
    const tag = buf[i++];
    let value = 0;
    let shift = 0;
    for (;;) {
      if (i >= buf.length) throw new Error("truncated HealthCheckResponse");
      const b = buf[i++];
      value += (b & 0x7f) * 2 ** shift;
      shift += 7;
      if (b < 0x80) break;
    }
    if (tag === 0x08) return value;
    // The response has no other field; any other wire type would not be a varint.
    if ((tag & 7) !== 0) throw new Error(`unexpected field tag ${tag} in HealthCheckResponse`);
  }
  return 0;
}

/** @returns {Promise<string | undefined>} undefined when healthy, else the reason. */
function checkGrpc(/** @type {string} */ target) {
  const address = /^\d+$/.test(target) ? `127.0.0.1:${target}` : target;
  const client = new Client(address, credentials.createInsecure());
  return new Promise((resolve) => {
    client.makeUnaryRequest(
      "/grpc.health.v1.Health/Check",
      // An empty HealthCheckRequest is service "": the server as a whole.
      (/** @type {Buffer} */ b) => b,
      (/** @type {Buffer} */ b) => b,
      Buffer.alloc(0),
      { deadline: Date.now() + TIMEOUT_MS },
      (err, res) => {
        client.close();
        if (err) return resolve(`Health/Check on ${address} failed: ${err.message}`);
        try {
          const status = decodeStatus(/** @type {Buffer} */ (res));
          resolve(status === SERVING ? undefined : `${address} is ${STATUS_NAMES[status] ?? status}`);
        } catch (e) {
          resolve(`${address}: ${/** @type {Error} */ (e).message}`);
        }
      },
    );
  });
}

/** @returns {Promise<string | undefined>} */
async function checkHttp(/** @type {string} */ url) {
  try {
    const res = await fetch(url, { signal: AbortSignal.timeout(TIMEOUT_MS) });
    await res.arrayBuffer();
    return res.ok ? undefined : `GET ${url} answered ${res.status}`;
  } catch (e) {
    return `GET ${url} failed: ${/** @type {Error} */ (e).message}`;
  }
}

async function main() {
  const [mode, target] = process.argv.slice(2);
  if (!target || (mode !== "grpc" && mode !== "http")) {
    process.stderr.write("usage: healthcheck.js grpc [host:]port | healthcheck.js http <url>\n");
    return 64;
  }
  const problem = mode === "grpc" ? await checkGrpc(target) : await checkHttp(target);
  if (problem) process.stderr.write(`unhealthy: ${problem}\n`);
  return problem ? 1 : 0;
}

main().then((code) => process.exit(code));
