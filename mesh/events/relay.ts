import { sql, type Kysely } from "kysely";
import { context, ROOT_CONTEXT } from "@opentelemetry/api";
import { Events, headers as natsHeaders, type JetStreamClient, type NatsConnection } from "nats";
import { backoffDelay, type BackoffOptions } from "./backoff.js";
import { Pause } from "../policy/pause.js";
import { transaction, type Database } from "../db/index.js";
import { observeOutbox } from "../telemetry/metrics.js";
import { traceMessagingPublish } from "../telemetry/messaging.js";
import { Headers } from "./headers.js";
import { OUTBOX_TABLE, type OutboxHeaders } from "./outbox.js";

/** Minimal logger (pino-compatible). */
export interface EventsLogger {
  warn(obj: object, msg: string): void;
}

/** Options for {@link OutboxRelay}. */
export interface OutboxRelayOptions {
  database: Database;
  /**
   * The current connection; `undefined` while there is none (the relay backs off). Given a
   * NatsConnection (rather than a JetStreamClient) the relay follows its status: it does not
   * publish while disconnected, stops waiting for acks when the link drops (requests sent into a
   * dead socket are never answered, and would otherwise each wait out the publish timeout), and
   * resumes the moment the client reconnects.
   */
  nats: () => NatsConnection | JetStreamClient | undefined;
  /** Rows per batch. Default 100: one batch is pipelined in a few ms, and bounds how long a PG transaction holds its lock. */
  batchSize?: number;
  /** Fallback poll when no kick arrives. Default 1,000 ms: bounds latency if a kick is missed, at one indexed query a second. */
  pollIntervalMs?: number;
  /** Backoff while the broker fails. Default 100 ms doubling to 5 s: the cap bounds the extra delay after the broker returns. */
  backoff?: Partial<BackoffOptions>;
  /** Wait for a publish ack. Default 5,000 ms, nats.js's JetStream default: an ack slower than that means the broker is in trouble. */
  publishTimeoutMs?: number;
  /** Sent rows are deleted after this long. Default 24 h: long past the 2-min dedup window, short enough to keep the table small. */
  retainSentMs?: number;
  logger?: EventsLogger;
  /**
   * Crash point for tests: runs after a batch was acked by JetStream and before it is marked sent.
   * Throwing (or killing the process) here leaves the rows unsent, so they are published again.
   */
  afterPublish?: (ids: string[]) => void | Promise<void>;
}

/** Counters for tests and metrics. */
export interface RelayStats {
  /** Publishes acked as new messages. */
  published: number;
  /** Publishes JetStream acked as duplicates (same Nats-Msg-Id within the dedup window). */
  duplicates: number;
  /** Failed publishes (timeouts, broker down). */
  failures: number;
  /** Batches not attempted because the connection was down. */
  offline: number;
}

/** What the relay knows about a connection's state, from its status events. */
interface Link {
  connected: boolean;
  onDisconnect: Set<() => void>;
}

interface PendingRow {
  id: string;
  subject: string;
  payload: Uint8Array;
  headers: string;
}

// "Meshwork outbox" as a PostgreSQL advisory lock key (any constant shared by all relays works).
const RELAY_LOCK_KEY = 0x4d6f7462;
// Purging is housekeeping; once a minute is plenty.
const PURGE_EVERY_MS = 60_000;

/**
 * Publishes outbox rows to JetStream, oldest first, with `Nats-Msg-Id` = event id, and marks them
 * sent after the publish ack. At-least-once: a crash between the ack and the mark republishes the
 * batch; JetStream drops the copies inside its 2-minute dedup window and consumers' inboxes drop
 * the rest (RELIABILITY.md, "outbox").
 *
 * Several relays may run against one PostgreSQL database (one per service replica): each batch runs
 * in a transaction that first takes `pg_try_advisory_xact_lock`, so exactly one relay publishes at a
 * time and the others idle. We do not use `FOR UPDATE SKIP LOCKED` to let relays publish disjoint
 * batches in parallel, because that publishes a later event of an aggregate before an earlier one
 * claimed by a slower relay, and the envelope promises per-subject order; one relay's pipelined
 * publishing is far faster than the services produce. On SQLite run one relay per database file
 * (a second one, in another process, would publish the same rows twice: harmless copies, but the
 * order between them is lost). It holds no transaction while publishing: the SQLite driver has one
 * connection, and an open transaction would make the service's writes, i.e. its RPCs, wait.
 *
 * Order caveat: publishes of a batch are pipelined; if the broker fails part-way, a later event may
 * already be stored when an earlier one is retried.
 */
export class OutboxRelay {
  readonly stats: RelayStats = { published: 0, duplicates: 0, failures: 0, offline: 0 };
  private readonly opts: Required<Omit<OutboxRelayOptions, "logger" | "afterPublish" | "backoff">> & { backoff: BackoffOptions };
  private running = false;
  private loopDone: Promise<void> | undefined;
  private kicked = false;
  private readonly pause = new Pause();
  /** The sleep in progress is the idle poll (a kick ends it), not a backoff. */
  private wakeOnKick = false;
  private reconnected = false;
  private lastPurge = 0;
  private unobserve: (() => void) | undefined;
  private readonly links = new WeakMap<NatsConnection, Link>();

  constructor(private readonly options: OutboxRelayOptions) {
    this.opts = {
      database: options.database,
      nats: options.nats,
      batchSize: options.batchSize ?? 100,
      pollIntervalMs: options.pollIntervalMs ?? 1_000,
      publishTimeoutMs: options.publishTimeoutMs ?? 5_000,
      retainSentMs: options.retainSentMs ?? 24 * 60 * 60 * 1_000,
      backoff: { initialMs: options.backoff?.initialMs ?? 100, maxMs: options.backoff?.maxMs ?? 5_000 },
    };
  }

  /** Starts the publish loop in the background, and exports its backlog as `meshwork_outbox_backlog` while it runs. */
  start(): void {
    if (this.running) return;
    this.running = true;
    this.unobserve = observeOutbox(this);
    this.loopDone = this.loop();
  }

  /** Stops the loop; resolves once the batch in flight (if any) has finished. */
  async stop(): Promise<void> {
    this.running = false;
    this.unobserve?.();
    this.unobserve = undefined;
    this.pause.wake();
    await this.loopDone;
  }

  /** Publish soon: call after committing a transaction that enqueued events. Ignored while backing off from a broker failure. */
  kick(): void {
    this.kicked = true;
    if (this.wakeOnKick) this.pause.wake();
  }

  /** Number of unsent events. */
  async backlog(): Promise<number> {
    const r = await this.opts.database.db
      .selectFrom(OUTBOX_TABLE)
      .select((eb) => eb.fn.countAll().as("n"))
      .where("sent_at", "is", null)
      .executeTakeFirstOrThrow();
    return Number(r.n);
  }

  private async loop(): Promise<void> {
    let failures = 0;
    while (this.running) {
      this.kicked = false;
      this.reconnected = false;
      let outcome: { claimed: number; failed: boolean };
      try {
        outcome = await this.runOnce();
      } catch (err) {
        this.options.logger?.warn({ err }, "outbox relay batch failed");
        outcome = { claimed: 0, failed: true };
      }
      if (!this.running) break;
      if (outcome.failed) {
        failures++;
        await this.sleep(backoffDelay(failures, this.opts.backoff), false);
        continue;
      }
      failures = 0;
      if (outcome.claimed >= this.opts.batchSize || this.kicked) continue;
      if (Date.now() - this.lastPurge >= PURGE_EVERY_MS) {
        this.lastPurge = Date.now();
        await this.purgeSent().catch((err) => this.options.logger?.warn({ err }, "outbox purge failed"));
      }
      await this.sleep(this.opts.pollIntervalMs, true);
    }
  }

  private async sleep(ms: number, wakeOnKick: boolean): Promise<void> {
    if ((wakeOnKick && this.kicked) || this.reconnected) {
      this.reconnected = false;
      return;
    }
    this.wakeOnKick = wakeOnKick;
    try {
      await this.pause.sleep(ms);
    } finally {
      this.wakeOnKick = false;
    }
  }

  /** One batch: returns how many rows it claimed and whether any publish failed. */
  private async runOnce(): Promise<{ claimed: number; failed: boolean }> {
    const target = this.opts.nats();
    if (!target) return { claimed: 0, failed: true };
    const nc = "jetstream" in target && typeof target.jetstream === "function" ? (target as NatsConnection) : undefined;
    const link = nc ? this.link(nc) : undefined;
    if (link && !link.connected) {
      this.stats.offline++;
      return { claimed: 0, failed: true };
    }
    const js = nc ? nc.jetstream() : (target as JetStreamClient);
    const { database } = this.opts;
    if (database.dialect === "postgres") {
      return transaction(database, async (trx) => {
        const lock = await sql<{ locked: boolean }>`select pg_try_advisory_xact_lock(${RELAY_LOCK_KEY}::bigint) as locked`.execute(trx);
        // Another relay is publishing; it will drain the backlog.
        if (!lock.rows[0]?.locked) return { claimed: 0, failed: false };
        return this.publishBatch(trx, js, link);
      });
    }
    return this.publishBatch(database.db, js, link);
  }

  private link(nc: NatsConnection): Link {
    let link = this.links.get(nc);
    if (link) return link;
    const l: Link = { connected: !nc.isClosed(), onDisconnect: new Set() };
    this.links.set(nc, l);
    void (async () => {
      for await (const s of nc.status()) {
        if (s.type === Events.Disconnect) {
          l.connected = false;
          for (const f of l.onDisconnect) f();
        } else if (s.type === Events.Reconnect) {
          l.connected = true;
          // Cut a backoff short (now or, if a batch is running, the next one): the broker is back.
          this.reconnected = true;
          this.pause.wake();
        }
      }
    })().catch(() => undefined);
    return l;
  }

  private async publishBatch(db: Kysely<any>, js: JetStreamClient, link: Link | undefined): Promise<{ claimed: number; failed: boolean }> {
    const rows: PendingRow[] = await db
      .selectFrom(OUTBOX_TABLE)
      .select(["id", "subject", "payload", "headers"])
      .where("sent_at", "is", null)
      .orderBy(this.opts.database.dialect === "postgres" ? sql.ref("seq") : sql.ref("rowid"))
      .limit(this.opts.batchSize)
      .execute();
    if (rows.length === 0) return { claimed: 0, failed: false };
    // Pipelined: all publishes go out on the connection in order, then the acks are awaited, until
    // the link drops (unacked ones count as failed; a copy that did land is dropped as a duplicate).
    const acked: boolean[] = rows.map(() => false);
    let firstError: unknown;
    const all = Promise.all(
      rows.map((r, i) =>
        this.publish(js, r).then(
          () => void (acked[i] = true),
          (err) => void (firstError ??= err),
        ),
      ),
    );
    let onLost: () => void = () => undefined;
    const lost = new Promise<void>((resolve) => (onLost = resolve));
    link?.onDisconnect.add(onLost);
    try {
      await Promise.race([all, lost]);
    } finally {
      link?.onDisconnect.delete(onLost);
    }
    const sent = rows.filter((_, i) => acked[i]).map((r) => r.id);
    const failed = rows.filter((_, i) => !acked[i]).map((r) => r.id);
    if (failed.length > 0) this.options.logger?.warn({ err: firstError, failed: failed.length }, "outbox publish failed");
    if (sent.length > 0) await this.options.afterPublish?.(sent);
    const now = Date.now();
    if (sent.length > 0) {
      await db.updateTable(OUTBOX_TABLE).set({ sent_at: now, attempts: sql`attempts + 1` }).where("id", "in", sent).execute();
    }
    if (failed.length > 0) {
      await db.updateTable(OUTBOX_TABLE).set({ attempts: sql`attempts + 1` }).where("id", "in", failed).execute();
    }
    return { claimed: rows.length, failed: failed.length > 0 };
  }

  /**
   * One publish in a PRODUCER span "publish <subject>", a child of the trace context stored with
   * the row (the request that wrote it); the message carries the publish span as its traceparent,
   * so the consumer's process span is the publish span's child (OpenTelemetry messaging conventions).
   */
  private publish(js: JetStreamClient, row: PendingRow): Promise<void> {
    const stored = JSON.parse(row.headers) as OutboxHeaders;
    const trace: Record<string, string> = {};
    if (stored.traceparent) trace.traceparent = stored.traceparent;
    if (stored.tracestate) trace.tracestate = stored.tracestate;
    // The relay's loop runs outside any request: a row without a stored context starts its own trace.
    return context.with(ROOT_CONTEXT, () =>
      traceMessagingPublish(
        row.subject,
        trace,
        async (sent) => {
          const h = natsHeaders();
          if (sent.traceparent) h.set(Headers.traceparent, sent.traceparent);
          if (sent.tracestate) h.set(Headers.tracestate, sent.tracestate);
          if (stored.deadline !== undefined) h.set(Headers.deadline, String(stored.deadline));
          try {
            const ack = await js.publish(row.subject, row.payload, { msgID: row.id, headers: h, timeout: this.opts.publishTimeoutMs });
            if (ack.duplicate) this.stats.duplicates++;
            else this.stats.published++;
          } catch (err) {
            this.stats.failures++;
            throw err;
          }
        },
        { messageId: row.id },
      ),
    );
  }

  /** Deletes rows sent more than `retainSentMs` ago (the loop does this once a minute); returns how many. */
  async purgeSent(): Promise<number> {
    const r = await this.opts.database.db
      .deleteFrom(OUTBOX_TABLE)
      .where("sent_at", "is not", null)
      .where("sent_at", "<", Date.now() - this.opts.retainSentMs)
      .executeTakeFirst();
    return Number(r.numDeletedRows);
  }
}
