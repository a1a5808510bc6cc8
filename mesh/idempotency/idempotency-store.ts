import { fromBinary, toBinary, type DescMessage, type MessageShape } from "@bufbuild/protobuf";
import { Code, ConnectError } from "@connectrpc/connect";
import { sql, type Kysely } from "kysely";
import { createHash, randomUUID } from "node:crypto";
import { blobType, type Database, type Migration } from "../db/index.js";

const TABLE = "meshwork_idempotency";

/** History table for {@link idempotencyMigrations}: `migrate(db, idempotencyMigrations, { table: IDEMPOTENCY_MIGRATION_TABLE })`. */
export const IDEMPOTENCY_MIGRATION_TABLE = "meshwork_idempotency_migrations";

/** Creates meshwork_idempotency in the service's own database. */
export const idempotencyMigrations: Migration[] = [
  {
    id: "0001_meshwork_idempotency",
    async up(db, dialect) {
      await db.schema
        .createTable(TABLE)
        .addColumn("scope", "text", (c) => c.notNull())
        .addColumn("key", "text", (c) => c.notNull())
        .addColumn("request_hash", "text", (c) => c.notNull())
        .addColumn("state", "text", (c) => c.notNull().check(sql`state in ('pending', 'done')`))
        // Random token of the current executor: a presumed-dead executor's late write is fenced off.
        .addColumn("owner", "text", (c) => c.notNull())
        .addColumn("response", blobType(dialect))
        // null for a stored response; a Connect code for a stored final error.
        .addColumn("code", "integer")
        .addColumn("message", "text")
        // Epoch ms (the portable timestamp convention of mesh/db).
        .addColumn("created_at", "bigint", (c) => c.notNull())
        .addColumn("heartbeat_at", "bigint", (c) => c.notNull())
        .addPrimaryKeyConstraint(`${TABLE}_pk`, ["scope", "key"])
        .execute();
      await db.schema.createIndex(`${TABLE}_created_at`).on(TABLE).column("created_at").execute();
    },
  },
];

interface Tables {
  [TABLE]: {
    scope: string;
    key: string;
    request_hash: string;
    state: "pending" | "done";
    owner: string;
    response: Buffer | null;
    code: number | null;
    message: string | null;
    created_at: number;
    heartbeat_at: number;
  };
}

/**
 * Error codes that are the call's final answer, so a repeat gets the same error. Everything else
 * (Unavailable, Internal, DeadlineExceeded, Aborted, ResourceExhausted, Canceled, Unknown — which is
 * what a plain thrown Error becomes — DataLoss) releases the key so a retry executes again.
 * Unauthenticated and PermissionDenied are not stored either: a client that refreshes its token or
 * gains the permission must be able to retry under the same key.
 */
export const FINAL_ERROR_CODES: ReadonlySet<Code> = new Set([
  Code.InvalidArgument,
  Code.NotFound,
  Code.AlreadyExists,
  Code.FailedPrecondition,
  Code.OutOfRange,
  Code.Unimplemented,
]);

// 5 s: a live executor refreshes its heartbeat every third of this, so only a dead or stalled one
// (kill -9, SIGSTOP, a 5 s event-loop block) is taken over, and a retry sent to another replica
// after a crash waits at most ~5 s, inside a typical unary deadline.
const DEFAULT_PENDING_TIMEOUT_MS = 5_000;
// 24 h: Stripe's retention for idempotency keys; longer than any client's retry schedule.
const DEFAULT_RETENTION_MS = 24 * 60 * 60 * 1_000;
// 50 ms: a repeat waiting on another process's executor adds at most this much latency, at ≤ 20
// small reads per second per waiter. Waiters in the executor's own process do not poll.
const POLL_INTERVAL_MS = 50;

/** sha256 (hex) of a serialized request: what {@link IdempotencyStore.run} expects as `requestHash`. */
export function hashRequest(bytes: Uint8Array): string {
  return createHash("sha256").update(bytes).digest("hex");
}

/**
 * Replayable responses for mutating calls, stored under (scope, key) in the service's own database.
 * Scope is typically the method name (plus the caller's identity when keys are client-chosen).
 *
 * Limit: the call's effect and its stored response commit separately. If the process dies between
 * them the key stays pending and is taken over after pendingTimeoutMs, i.e. fn runs again — fn's
 * own writes should tolerate that (e.g. keyed inserts checked with isUniqueViolation).
 */
export class IdempotencyStore {
  readonly #db: Kysely<Tables>;
  readonly #pendingTimeoutMs: number;
  readonly #retentionMs: number;
  /** Executions running in this process, so local repeats wait on a promise instead of polling. */
  readonly #inflight = new Map<string, Promise<void>>();

  /** Run {@link idempotencyMigrations} on `database` first. */
  constructor(database: Database, opts: { pendingTimeoutMs?: number; retentionMs?: number } = {}) {
    this.#db = database.db as Kysely<Tables>;
    this.#pendingTimeoutMs = opts.pendingTimeoutMs ?? DEFAULT_PENDING_TIMEOUT_MS;
    this.#retentionMs = opts.retentionMs ?? DEFAULT_RETENTION_MS;
  }

  /**
   * Runs `fn` once per (scope, key): the first caller executes and stores its bytes (or a final
   * error, see {@link FINAL_ERROR_CODES}); a repeat gets the stored result; a concurrent repeat waits
   * for the first. A repeat whose requestHash differs fails with FailedPrecondition (the key's state,
   * not the request alone, makes it invalid). An executor whose heartbeat is older than
   * pendingTimeoutMs is presumed dead and a later caller takes over. `signal` stops a repeat's wait.
   */
  async run(scope: string, key: string, requestHash: string, fn: () => Promise<Uint8Array>, opts: { signal?: AbortSignal } = {}): Promise<Uint8Array> {
    for (;;) {
      if (opts.signal?.aborted) throw ConnectError.from(opts.signal.reason);
      const owner = randomUUID();
      const now = Date.now();
      const inserted = await this.#db
        .insertInto(TABLE)
        .values({ scope, key, request_hash: requestHash, state: "pending", owner, created_at: now, heartbeat_at: now })
        .onConflict((oc) => oc.columns(["scope", "key"]).doNothing())
        .executeTakeFirst();
      if (Number(inserted.numInsertedOrUpdatedRows) === 1) return this.#execute(scope, key, owner, fn);

      const row = await this.#db.selectFrom(TABLE).selectAll().where("scope", "=", scope).where("key", "=", key).executeTakeFirst();
      if (!row) continue; // released by a retryable failure in between: try to claim it
      if (row.request_hash !== requestHash) {
        throw new ConnectError(`idempotency key ${key} in ${scope} was already used with a different request`, Code.FailedPrecondition);
      }
      if (row.state === "done") {
        if (row.code === null) return new Uint8Array(row.response!.buffer, row.response!.byteOffset, row.response!.byteLength);
        throw new ConnectError(row.message ?? "", row.code as Code);
      }
      if (Date.now() - row.heartbeat_at > this.#pendingTimeoutMs) {
        // Compare-and-set on the old owner: of several callers noticing the dead executor, one wins.
        const took = await this.#db
          .updateTable(TABLE)
          .set({ owner, heartbeat_at: Date.now() })
          .where("scope", "=", scope)
          .where("key", "=", key)
          .where("state", "=", "pending")
          .where("owner", "=", row.owner)
          .executeTakeFirst();
        if (Number(took.numUpdatedRows) === 1) return this.#execute(scope, key, owner, fn);
        continue;
      }
      const local = this.#inflight.get(`${scope}\0${key}`);
      await abortable(local ?? new Promise((r) => setTimeout(r, POLL_INTERVAL_MS)), opts.signal);
    }
  }

  /**
   * {@link run} for protobuf-es messages: hashes `toBinary(request)` with sha256 and decodes the
   * stored response. Serialization must be deterministic for equal requests (map fields in
   * insertion order make it so only when callers insert in the same order).
   */
  async runMessage<I extends DescMessage, O extends DescMessage>(
    scope: string,
    key: string,
    request: MessageShape<I>,
    requestSchema: I,
    responseSchema: O,
    fn: () => Promise<MessageShape<O>>,
    opts: { signal?: AbortSignal } = {},
  ): Promise<MessageShape<O>> {
    const hash = hashRequest(toBinary(requestSchema, request));
    const bytes = await this.run(scope, key, hash, async () => toBinary(responseSchema, await fn()), opts);
    return fromBinary(responseSchema, bytes);
  }

  /** Deletes records created before `now - retentionMs`; returns how many. */
  async prune(now: Date = new Date()): Promise<number> {
    const r = await this.#db.deleteFrom(TABLE).where("created_at", "<", now.getTime() - this.#retentionMs).executeTakeFirst();
    return Number(r.numDeletedRows);
  }

  async #execute(scope: string, key: string, owner: string, fn: () => Promise<Uint8Array>): Promise<Uint8Array> {
    const id = `${scope}\0${key}`;
    const mine = this.#db.updateTable(TABLE).where("scope", "=", scope).where("key", "=", key).where("owner", "=", owner).where("state", "=", "pending");
    // Store failures are swallowed below: the key then stays pending, its heartbeat stops, and it is
    // taken over after pendingTimeoutMs — the caller still gets fn's real outcome.
    const heartbeat = setInterval(() => {
      mine.set({ heartbeat_at: Date.now() }).execute().catch(() => undefined);
    }, this.#pendingTimeoutMs / 3);
    heartbeat.unref();
    let done!: () => void;
    const settled = new Promise<void>((r) => (done = r));
    this.#inflight.set(id, settled);
    try {
      let bytes: Uint8Array;
      try {
        bytes = await fn();
      } catch (err) {
        const ce = ConnectError.from(err);
        if (FINAL_ERROR_CODES.has(ce.code)) {
          await mine.set({ state: "done", code: ce.code, message: ce.rawMessage }).execute().catch(() => undefined);
        } else {
          await this.#db.deleteFrom(TABLE).where("scope", "=", scope).where("key", "=", key).where("owner", "=", owner).execute().catch(() => undefined);
        }
        throw err;
      }
      const response = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
      await mine.set({ state: "done", response, code: null, message: null }).execute().catch(() => undefined);
      return bytes;
    } finally {
      clearInterval(heartbeat);
      if (this.#inflight.get(id) === settled) this.#inflight.delete(id);
      done();
    }
  }
}

/** Resolves when `p` settles; rejects with the signal's reason (as a ConnectError) if aborted first. */
function abortable(p: Promise<unknown>, signal?: AbortSignal): Promise<void> {
  if (!signal) return p.then(() => undefined);
  return new Promise<void>((resolve, reject) => {
    const onAbort = () => reject(ConnectError.from(signal.reason));
    if (signal.aborted) return onAbort();
    signal.addEventListener("abort", onAbort, { once: true });
    p.then(() => {
      signal.removeEventListener("abort", onAbort);
      resolve();
    });
  });
}
