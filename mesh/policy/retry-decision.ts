import { Code } from "@connectrpc/connect";

/** What is known about a failed attempt when deciding whether to retry it. */
export interface FailedAttempt {
  code: Code;
  /** The status message (grpc-message), used to recognise transport-level failures. */
  message: string;
  /** Response headers arrived: the server application saw the call (A6: committed, no retry). */
  headersReceived: boolean;
  /** A unary call: nothing reaches the caller before the final status, so a lost connection commits nothing. */
  unary?: boolean;
  /** The method is idempotent / has no side effects, or the request carries an idempotency key. */
  safe: boolean;
  /** From `grpc-retry-pushback-ms`: absent, a delay in ms, or "stop" (negative or unparseable). */
  pushback: number | "stop" | undefined;
  /**
   * The attempt ran out of its per-try timeout, not the call's deadline (the transport cut it
   * short; the call still has time left for another attempt).
   */
  perTryTimeout?: boolean;
}

/**
 * - `retry`: retry, subject to throttling and the budget;
 * - `transparent`: the request never reached the server, retry freely (A6 transparent retry);
 * - `no`: fail with this error.
 */
export type RetryVerdict = "retry" | "transparent" | "no";

/** The verdict, and whether the failure is a retryable-status failure that costs a throttle token. */
export interface RetryDecision {
  verdict: RetryVerdict;
  countsForThrottle: boolean;
}

/**
 * The attempt provably never reached a server application: grpc-js could not connect
 * ("No connection established ... ECONNREFUSED") or the server refused the HTTP/2 stream, which
 * RFC 9113 §8.7 guarantees was not processed. Anything else ("Connection dropped" mid-call) may
 * have been processed.
 */
export function neverReachedServer(f: Pick<FailedAttempt, "code" | "message" | "headersReceived">): boolean {
  return f.code === Code.Unavailable && !f.headersReceived && /No connection established|Stream refused by server|ECONNREFUSED/.test(f.message);
}

/**
 * A reset stream rather than an answer: connect-node maps ECONNRESET to Aborted (TOOLCHAIN trap
 * 6), grpc-js reports an RST_STREAM as Internal "Received RST_STREAM ..." or, for CANCEL, as
 * Canceled (the caller's own cancellation never gets here: the transport stops first). A6 leaves
 * these to configuration; they are retried for safe methods only, since the server may have acted.
 */
export function isStreamReset(f: Pick<FailedAttempt, "code" | "message">): boolean {
  if (f.code === Code.Aborted || f.code === Code.Canceled) return true;
  return f.code === Code.Internal && f.message.startsWith("Received RST_STREAM");
}

/**
 * The connection to the endpoint went away under the attempt (the replica died or was cut off):
 * grpc-js reports Unavailable with the socket error, or "Connection dropped".
 */
export function connectionLost(f: Pick<FailedAttempt, "code" | "message">): boolean {
  return f.code === Code.Unavailable && /ECONNRESET|EPIPE|Connection dropped|socket hang up/i.test(f.message);
}

/**
 * The retry rule, a pure function of the failed attempt (tested cell by cell):
 * 1. response headers arrived → no (A6: the call is committed), except a safe unary call whose
 *    connection was lost or stream reset before its status: its caller has seen nothing yet, and
 *    a replica killed between sending headers and trailers must not fail a call that can be redone;
 * 2. the status must be retryable: one of `retryableCodes` (default Unavailable), a stream reset,
 *    ResourceExhausted with a pushback (the server shed the call and says when to come back), or
 *    an attempt cut by its per-try timeout (the call's deadline has time left: Envoy's
 *    per_try_timeout); any other DeadlineExceeded never is (the deadline spans all attempts), nor
 *    are application codes; a per-try timeout of a safe unary call is retried like a lost
 *    connection (rule 1), since the endpoint, not the request, stopped answering in time;
 * 3. a pushback of "stop" → no (A6);
 * 4. never reached a server → transparent retry, for any method;
 * 5. otherwise only safe methods are retried (idempotency_level or a non-empty idempotency_key).
 */
export function decideRetry(f: FailedAttempt, retryableCodes: ReadonlySet<Code>): RetryDecision {
  const perTry = f.perTryTimeout === true && f.code === Code.DeadlineExceeded;
  const retryableStatus =
    perTry ||
    (f.code !== Code.DeadlineExceeded && (retryableCodes.has(f.code) || isStreamReset(f) || (f.code === Code.ResourceExhausted && typeof f.pushback === "number")));
  if (!retryableStatus) return { verdict: "no", countsForThrottle: false };
  const reached = !neverReachedServer(f);
  // A6 transparent retries cost nothing: the server never saw the attempt. Nor does a shed call
  // with a pushback: the server said when to come back, and the retry budget still bounds the
  // load; otherwise one shedding replica (which fails fast, so the balancer keeps picking it)
  // would drain the bucket while its peers answer every retry.
  const shed = f.code === Code.ResourceExhausted && typeof f.pushback === "number";
  // A lost connection says the endpoint is gone, not that the service is overloaded: outlier
  // ejection deals with it, and the retry budget still bounds the retries. Charging the bucket
  // would let one replica killed with ≥ 5 calls in flight stop every retry of the upstream (R1).
  const lost = connectionLost(f);
  // Nor does a per-try timeout, for the same reason: a frozen replica (R5) with N calls in flight
  // fails all N within one per-try window, and 5 tokens stop every retry of the upstream — the
  // retries of those very calls included, which a healthy peer would answer. The endpoint is
  // ejected after 5 of them; when every replica is slow (overload, the case the bucket is for),
  // the retry budget still caps retries at 20 % of requests, and each call at maxAttempts
  // attempts within its one deadline.
  const countsForThrottle = reached && !shed && !lost && !perTry;
  const committed = f.headersReceived && !(f.safe && f.unary && (lost || perTry || isStreamReset(f)));
  if (committed || f.pushback === "stop") return { verdict: "no", countsForThrottle };
  if (!reached) return { verdict: "transparent", countsForThrottle };
  return { verdict: f.safe ? "retry" : "no", countsForThrottle };
}

/**
 * Parses `grpc-retry-pushback-ms` (A6): a non-negative integer, otherwise "stop". Repeated
 * identical values (Headers joins them with ", ") count as one: mesh/grpc/errors.ts currently
 * sends every error metadata entry twice.
 */
export function parsePushback(value: string | null): number | "stop" | undefined {
  if (value === null) return undefined;
  const parts = new Set(value.split(",").map((p) => p.trim()));
  const [only] = parts;
  return parts.size === 1 && /^\d+$/.test(only) ? Number(only) : "stop";
}
