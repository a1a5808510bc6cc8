import { randomUUID } from "node:crypto";
import { create, toBinary, type DescMessage, type MessageShape } from "@bufbuild/protobuf";
import { anyPack, timestampFromMs } from "@bufbuild/protobuf/wkt";
import { context, propagation } from "@opentelemetry/api";
import { sql, type Kysely, type Transaction } from "kysely";
import { EventEnvelopeSchema } from "../../gen/meshwork/v1/event_pb.js";
import type { Dialect, Migration } from "../db/index.js";
import { subjectFor } from "./subjects.js";

/** Name of the outbox table every producing service has. */
export const OUTBOX_TABLE = "meshwork_outbox";

/** Migration history table for {@link outboxMigrations}: `migrate(database, outboxMigrations, { table: OUTBOX_MIGRATION_TABLE })`. */
export const OUTBOX_MIGRATION_TABLE = "meshwork_outbox_migrations";

/** Columns of {@link OUTBOX_TABLE} (times are epoch milliseconds). */
export interface OutboxRow {
  /** The event id (UUID), also the JetStream `Nats-Msg-Id`. */
  id: string;
  /** NATS subject, e.g. `orders.order_placed`. */
  subject: string;
  /** Payload type name, e.g. `orders.v1.OrderPlaced`. */
  type: string;
  /** The serialized meshwork.v1.EventEnvelope. */
  payload: Uint8Array;
  /** JSON of {@link OutboxHeaders}. */
  headers: string;
  created_at: number;
  sent_at: number | null;
  attempts: number;
}

/** What the relay turns into NATS headers. */
export interface OutboxHeaders {
  traceparent?: string;
  tracestate?: string;
  /** Absolute deadline of the originating request, epoch ms. */
  deadline?: number;
}

/**
 * Creates {@link OUTBOX_TABLE}. Rows are published in insertion order: PostgreSQL numbers them with
 * an identity column `seq`; SQLite uses the table's implicit, monotonically assigned rowid. The
 * partial index keeps the relay's "oldest unsent" query cheap however many sent rows remain.
 */
export const outboxMigrations: Migration[] = [
  {
    id: "0001_meshwork_outbox",
    async up(db: Kysely<any>, dialect: Dialect) {
      if (dialect === "postgres") {
        await sql`create table meshwork_outbox (
          id text primary key,
          seq bigint generated always as identity,
          subject text not null,
          type text not null,
          payload bytea not null,
          headers text not null,
          created_at bigint not null,
          sent_at bigint,
          attempts integer not null default 0
        )`.execute(db);
        await sql`create index meshwork_outbox_unsent on meshwork_outbox (seq) where sent_at is null`.execute(db);
      } else {
        await sql`create table meshwork_outbox (
          id text primary key,
          subject text not null,
          type text not null,
          payload blob not null,
          headers text not null,
          created_at integer not null,
          sent_at integer,
          attempts integer not null default 0
        )`.execute(db);
        // Every entry has sent_at NULL, so the index is ordered by rowid: no sort for the relay.
        await sql`create index meshwork_outbox_unsent on meshwork_outbox (sent_at) where sent_at is null`.execute(db);
      }
    },
  },
];

/** An event to record with a state change. */
export interface EnqueueEventInput<Desc extends DescMessage> {
  /** Payload type, e.g. `OrderPlacedSchema`. */
  schema: Desc;
  message: MessageShape<Desc>;
  /** Producing service, e.g. "orders". */
  producer: string;
  /** Id of the aggregate the event is about (the envelope's `subject`), e.g. the order id. */
  aggregateId: string;
  /** NATS subject; {@link subjectFor}(schema) when absent. */
  subject?: string;
  /** W3C trace context; injected from the active OpenTelemetry context when absent. */
  traceContext?: { traceparent?: string; tracestate?: string };
  /** Deadline of the originating request (Date or epoch ms), forwarded as `Meshwork-Deadline`. */
  deadline?: Date | number;
  /** When the fact happened; now when absent. */
  time?: Date;
}

/**
 * Records an event in the outbox inside the caller's transaction, so it is published if and only
 * if the state change commits. Only an insert: it never waits for the broker. Call
 * `relay.kick()` after the commit to publish promptly.
 */
export async function enqueueEvent<Desc extends DescMessage>(
  trx: Transaction<any>,
  input: EnqueueEventInput<Desc>,
): Promise<{ id: string; subject: string }> {
  const id = randomUUID();
  const subject = input.subject ?? subjectFor(input.schema);
  const trace = input.traceContext ?? currentTraceContext();
  const envelope = create(EventEnvelopeSchema, {
    id,
    type: input.schema.typeName,
    time: timestampFromMs((input.time ?? new Date()).getTime()),
    producer: input.producer,
    subject: input.aggregateId,
    traceparent: trace.traceparent ?? "",
    tracestate: trace.tracestate ?? "",
    payload: anyPack(input.schema, input.message),
  });
  const headers: OutboxHeaders = {};
  if (trace.traceparent) headers.traceparent = trace.traceparent;
  if (trace.tracestate) headers.tracestate = trace.tracestate;
  if (input.deadline !== undefined) headers.deadline = typeof input.deadline === "number" ? input.deadline : input.deadline.getTime();
  const bytes = toBinary(EventEnvelopeSchema, envelope);
  await trx
    .insertInto(OUTBOX_TABLE)
    .values({
      id,
      subject,
      type: input.schema.typeName,
      // better-sqlite3 binds Buffers, not plain Uint8Arrays.
      payload: Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength),
      headers: JSON.stringify(headers),
      created_at: Date.now(),
      attempts: 0,
    })
    .execute();
  return { id, subject };
}

function currentTraceContext(): { traceparent?: string; tracestate?: string } {
  const carrier: Record<string, string> = {};
  propagation.inject(context.active(), carrier);
  return { traceparent: carrier.traceparent, tracestate: carrier.tracestate };
}
