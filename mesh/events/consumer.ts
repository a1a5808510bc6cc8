import { fromBinary, type DescMessage, type MessageShape } from "@bufbuild/protobuf";
import { anyUnpack } from "@bufbuild/protobuf/wkt";
import { context, propagation, ROOT_CONTEXT, type Context, type TextMapGetter } from "@opentelemetry/api";
import { sql, type Kysely, type Transaction } from "kysely";
import type { ConsumerMessages, JsMsg, MsgHdrs, NatsConnection } from "nats";
import { EventEnvelopeSchema, type EventEnvelope } from "../../gen/meshwork/v1/event_pb.js";
import { backoffDelay, type BackoffOptions } from "./backoff.js";
import { Pause } from "../policy/pause.js";
import { transaction, type Database, type Dialect, type Migration } from "../db/index.js";
import { deadLetter } from "./dlq.js";
import { Headers } from "./headers.js";
import type { EventsLogger } from "./relay.js";
import { ensureConsumer, DLQ_STREAM_NAME } from "./streams.js";
import { eventConsumerHook } from "../telemetry/messaging.js";
import { observeDlq } from "../telemetry/metrics.js";

/** Name of the inbox table every consuming service has. */
export const INBOX_TABLE = "meshwork_inbox";

/** Migration history table for {@link inboxMigrations}: `migrate(database, inboxMigrations, { table: INBOX_MIGRATION_TABLE })`. */
export const INBOX_MIGRATION_TABLE = "meshwork_inbox_migrations";

/**
 * Creates {@link INBOX_TABLE}: one row per (consumer, event id) processed, written in the same
 * transaction as the handler's effect, which makes redeliveries harmless. Rows are kept: an event
 * can come back long after the JetStream dedup window (a DLQ redrive goes to every consumer).
 */
export const inboxMigrations: Migration[] = [
  {
    id: "0001_meshwork_inbox",
    async up(db: Kysely<any>, dialect: Dialect) {
      const ts = dialect === "postgres" ? sql`bigint` : sql`integer`;
      await sql`create table meshwork_inbox (
        consumer text not null,
        event_id text not null,
        processed_at ${ts} not null,
        primary key (consumer, event_id)
      )`.execute(db);
    },
  },
];

/** Facts about one delivery, passed to handlers. */
export interface Delivery {
  /** NATS subject, e.g. `orders.order_placed`. */
  subject: string;
  stream: string;
  streamSeq: number;
  /** 1 on the first delivery. */
  deliveryCount: number;
  /** Deadline of the request that produced the event (epoch ms), when it had one. */
  deadline?: number;
  /**
   * OpenTelemetry context holding the producer's span context (from the W3C headers; empty when no
   * propagator is registered). While the handler runs, the active context is the consumer's process
   * span, a child of it.
   */
  traceContext: Context;
}

/** Handles one payload type; build with {@link on}. */
export interface EventHandler<Desc extends DescMessage = DescMessage> {
  readonly schema: Desc;
  handle(payload: MessageShape<Desc>, envelope: EventEnvelope, trx: Transaction<any>, delivery: Delivery): Promise<void>;
}

/** A typed handler for events whose payload is `schema`. It runs inside the inbox transaction: use `trx` for every write. */
export function on<Desc extends DescMessage>(schema: Desc, handle: EventHandler<Desc>["handle"]): EventHandler<Desc> {
  return { schema, handle };
}

/** A handler for every envelope, whatever its payload. */
export type EnvelopeHandler = (envelope: EventEnvelope, trx: Transaction<any>, delivery: Delivery) => Promise<void>;

/** Options for {@link EventConsumer}. */
export interface EventConsumerOptions {
  nats: NatsConnection;
  database: Database;
  /** Durable consumer name; also the inbox's `consumer` column. Replicas of a service share it and split the work. */
  durable: string;
  stream: string;
  /** Several subjects need nats-server 2.10 or later. */
  filterSubjects: string[];
  /** Typed handlers by payload type (events of other types are acked and ignored), or one handler for all. */
  handlers: EventHandler<any>[] | EnvelopeHandler;
  /** Deliveries before a message goes to the DLQ. Default 5, the cap gRPC puts on attempts (gRFC A6): with the nak backoff, ~15 s of transient failure is ridden out. */
  maxDeliver?: number;
  /** Time to process and ack a message before JetStream redelivers it. Default 30 s, JetStream's own default. */
  ackWaitMs?: number;
  /** Redelivery delay after a handler error. Default 1 s doubling to 30 s. */
  nakBackoff?: Partial<BackoffOptions>;
  /** Subject prefix for dead letters. Default "dlq" (the DLQ stream captures `dlq.>`). */
  dlqSubjectPrefix?: string;
  /**
   * Wraps the processing of each message (e.g. to act after the inbox transaction committed). It
   * runs inside the consumer's own process span, whose parent is the producer's `traceContext`.
   */
  onMessage?: (msg: JsMsg, traceContext: Context, next: () => Promise<void>) => Promise<void>;
  logger?: EventsLogger;
}

// Messages pulled ahead of processing. Small, because ack_wait runs from delivery: the last of the
// buffer must still be handled well within ackWait.
const PREFETCH = 64;

// meshwork_dlq_messages: the DLQ is one stream, so a process reports its size once, through any
// of its running consumers (one JetStream stream-info request per scrape).
const dlqReaders = new Set<() => Promise<number>>();
let dlqGauge: (() => void) | undefined;

// One hook for every consumer: it holds no state per consumer.
const traceConsumed = eventConsumerHook();

const headerGetter: TextMapGetter<MsgHdrs | undefined> = {
  get: (h, key) => h?.get(key) || undefined,
  keys: (h) => (h ? h.keys() : []),
};

/**
 * A durable JetStream pull consumer with an inbox and a dead-letter queue.
 *
 * For each message: in one DB transaction, insert (consumer, event id) into the inbox and, unless it
 * was already there (a duplicate), run the handler; commit; then ack. So the effect happens once per
 * event id, however often the event is delivered. A handler error naks with backoff; at the
 * `maxDeliver`-th delivery the message is published to `dlq.<subject>` with the reason and then
 * terminated. An undecodable envelope goes to the DLQ at once.
 */
export class EventConsumer {
  private readonly maxDeliver: number;
  private readonly ackWaitMs: number;
  private readonly nakBackoff: BackoffOptions;
  private readonly dlqPrefix: string;
  private readonly handlerMap: Map<string, EventHandler<any>> | undefined;
  private messages: ConsumerMessages | undefined;
  private loopDone: Promise<void> | undefined;
  private running = false;
  private readonly pause = new Pause();
  private dlqSize: (() => Promise<number>) | undefined;

  constructor(private readonly opts: EventConsumerOptions) {
    this.maxDeliver = opts.maxDeliver ?? 5;
    this.ackWaitMs = opts.ackWaitMs ?? 30_000;
    this.nakBackoff = { initialMs: opts.nakBackoff?.initialMs ?? 1_000, maxMs: opts.nakBackoff?.maxMs ?? 30_000 };
    this.dlqPrefix = opts.dlqSubjectPrefix ?? "dlq";
    if (typeof opts.handlers !== "function") this.handlerMap = new Map(opts.handlers.map((h) => [h.schema.typeName, h]));
  }

  /** Creates/updates the durable consumer and starts processing in the background. */
  async start(): Promise<void> {
    if (this.running) return;
    const { nats, stream, durable, filterSubjects } = this.opts;
    const jsm = await nats.jetstreamManager();
    await ensureConsumer(jsm, { stream, durable, filterSubjects, ackWaitMs: this.ackWaitMs });
    const consumer = await nats.jetstream().consumers.get(stream, durable);
    this.running = true;
    this.dlqSize = async () => (await jsm.streams.info(DLQ_STREAM_NAME)).state.messages;
    dlqReaders.add(this.dlqSize);
    dlqGauge ??= observeDlq(() => [...dlqReaders][0](), { stream: DLQ_STREAM_NAME });
    this.loopDone = (async () => {
      let failures = 0;
      while (this.running) {
        try {
          this.messages = await consumer.consume({ max_messages: PREFETCH });
          if (!this.running) await this.messages.close(); // stop() came while we were subscribing
          failures = 0;
          for await (const msg of this.messages) await this.process(msg);
        } catch (err) {
          this.opts.logger?.warn({ err, durable }, "event consumer stopped pulling; restarting");
        }
        // The iterator ends only on stop() or on an error; pause before pulling again.
        if (this.running) {
          await this.pause.sleep(backoffDelay(++failures, this.nakBackoff));
        }
      }
    })();
  }

  /** Stops pulling; resolves once the message in hand is processed. Unacked buffered messages are redelivered later. */
  async stop(): Promise<void> {
    this.running = false;
    if (this.dlqSize) dlqReaders.delete(this.dlqSize);
    if (dlqReaders.size === 0) {
      dlqGauge?.();
      dlqGauge = undefined;
    }
    this.pause.wake();
    await this.messages?.close();
    await this.loopDone;
  }

  private process(msg: JsMsg): Promise<void> {
    const ctx = propagation.extract(ROOT_CONTEXT, msg.headers, headerGetter);
    const run = () => this.handleMessage(msg, ctx);
    const hooked = this.opts.onMessage ? () => this.opts.onMessage!(msg, ctx, run) : run;
    // The process span (child of the relay's publish span) is active around the hook and the
    // handler, so their log lines and outgoing calls carry the event's trace.
    return context.with(ctx, () => traceConsumed(msg, ctx, hooked)).catch((err) => {
      // Last resort (e.g. the DB is down): leave the message for redelivery.
      this.opts.logger?.warn({ err, subject: msg.subject }, "event processing failed");
      msg.nak(backoffDelay(msg.info.deliveryCount, this.nakBackoff));
    });
  }

  private async handleMessage(msg: JsMsg, traceContext: Context): Promise<void> {
    const deliveries = msg.info.deliveryCount;
    let envelope: EventEnvelope;
    try {
      envelope = fromBinary(EventEnvelopeSchema, msg.data);
    } catch (err) {
      return this.toDlq(msg, `undecodable envelope: ${(err as Error).message}`);
    }
    if (!envelope.id) return this.toDlq(msg, "envelope has no id");
    const rawDeadline = msg.headers?.get(Headers.deadline);
    const delivery: Delivery = {
      subject: msg.subject,
      stream: msg.info.stream,
      streamSeq: msg.info.streamSequence,
      deliveryCount: deliveries,
      deadline: rawDeadline ? Number(rawDeadline) : undefined,
      traceContext,
    };

    let run: (trx: Transaction<any>) => Promise<void>;
    if (this.handlerMap) {
      const typeName = (envelope.payload?.typeUrl ?? "").split("/").pop() ?? "";
      const handler = this.handlerMap.get(typeName);
      if (!handler) return msg.ack(); // Not an event this consumer cares about.
      let payload;
      try {
        payload = anyUnpack(envelope.payload!, handler.schema);
      } catch (err) {
        return this.toDlq(msg, `undecodable ${typeName} payload: ${(err as Error).message}`);
      }
      if (!payload) return this.toDlq(msg, `payload is not a ${typeName}`);
      run = (trx) => handler.handle(payload, envelope, trx, delivery);
    } else {
      const handler = this.opts.handlers as EnvelopeHandler;
      run = (trx) => handler(envelope, trx, delivery);
    }

    if (deliveries > this.maxDeliver) {
      // Earlier deliveries ended without an outcome (process died, ack lost): unless the inbox says
      // it was processed, stop trying.
      if (await this.processed(envelope.id)) return msg.ack();
      return this.toDlq(msg, `delivered ${deliveries} times without success (maxDeliver ${this.maxDeliver})`, envelope.id);
    }

    try {
      await transaction(this.opts.database, async (trx) => {
        const r = await trx
          .insertInto(INBOX_TABLE)
          .values({ consumer: this.opts.durable, event_id: envelope.id, processed_at: Date.now() })
          // A duplicate inserts nothing (no error, so the PostgreSQL transaction stays usable); a
          // concurrent first delivery makes this wait for its commit, then do nothing.
          .onConflict((oc) => oc.columns(["consumer", "event_id"]).doNothing())
          .executeTakeFirst();
        if (Number(r.numInsertedOrUpdatedRows ?? 0n) === 0) return;
        await run(trx);
      });
    } catch (err) {
      const reason = err instanceof Error ? err.message : String(err);
      if (deliveries >= this.maxDeliver) return this.toDlq(msg, reason, envelope.id);
      this.opts.logger?.warn({ err, subject: msg.subject, eventId: envelope.id, deliveries }, "event handler failed; will retry");
      return msg.nak(backoffDelay(deliveries, this.nakBackoff));
    }
    // After the commit: if this ack is lost the redelivery finds the inbox row and only acks.
    msg.ack();
  }

  private async processed(eventId: string): Promise<boolean> {
    const row = await this.opts.database.db
      .selectFrom(INBOX_TABLE)
      .select("event_id")
      .where("consumer", "=", this.opts.durable)
      .where("event_id", "=", eventId)
      .executeTakeFirst();
    return row !== undefined;
  }

  private async toDlq(msg: JsMsg, reason: string, eventId?: string): Promise<void> {
    // If this publish fails, process() naks and the next delivery (count > maxDeliver) comes here again.
    await deadLetter(this.opts.nats.jetstream(), msg, { consumer: this.opts.durable, reason, prefix: this.dlqPrefix, eventId });
    msg.term();
    this.opts.logger?.warn({ subject: msg.subject, eventId, reason }, "event moved to the DLQ");
  }
}
