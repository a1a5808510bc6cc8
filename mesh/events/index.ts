/**
 * Domain events: a transactional outbox published to NATS JetStream by a relay, and idempotent
 * consumers (inbox table) with a dead-letter stream. See README.md in this folder.
 */
export { outboxMigrations, enqueueEvent, OUTBOX_TABLE, OUTBOX_MIGRATION_TABLE, type EnqueueEventInput, type OutboxRow, type OutboxHeaders } from "./outbox.js";
export { OutboxRelay, type OutboxRelayOptions, type RelayStats, type EventsLogger } from "./relay.js";
export {
  ensureStreams,
  ensureConsumer,
  domainStream,
  DLQ_STREAM,
  DLQ_STREAM_NAME,
  SHOP_STREAMS,
  DUPLICATE_WINDOW_MS,
  type StreamDef,
  type ConsumerDef,
  type EnsureAction,
} from "./streams.js";
export {
  EventConsumer,
  inboxMigrations,
  on,
  INBOX_TABLE,
  INBOX_MIGRATION_TABLE,
  type EventConsumerOptions,
  type EventHandler,
  type EnvelopeHandler,
  type Delivery,
} from "./consumer.js";
export { listDlq, redriveDlq, deadLetter, type DlqEntry } from "./dlq.js";
export { subjectFor, domainOf } from "./subjects.js";
export { Headers } from "./headers.js";
export { backoffDelay, type BackoffOptions } from "./backoff.js";
export { startEventRelay, type EventRelay } from "./service-relay.js";
