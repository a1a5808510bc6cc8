import {
  AckPolicy,
  DeliverPolicy,
  DiscardPolicy,
  nanos,
  RetentionPolicy,
  StorageType,
  type ConsumerConfig,
  type JetStreamManager,
  type NatsError,
  type StreamConfig,
} from "nats";

/** A stream Meshwork declares: a name and the subjects it captures. */
export interface StreamDef {
  name: string;
  subjects: string[];
  /** Oldest messages are dropped after this long; 0 (default) keeps them until limits say otherwise. */
  maxAgeMs?: number;
}

/**
 * JetStream's default duplicate window, 2 minutes, set explicitly: a republish of the same
 * `Nats-Msg-Id` inside it is acked as a duplicate and not stored (RELIABILITY.md, "NATS JetStream").
 * Past it, consumers' inboxes deduplicate by event id.
 */
export const DUPLICATE_WINDOW_MS = 2 * 60 * 1_000;

/** Name of the dead-letter stream. */
export const DLQ_STREAM_NAME = "DLQ";

/** The stream of one producing domain: e.g. `orders` → `ORDERS` capturing `orders.>`. */
export function domainStream(domain: string): StreamDef {
  return { name: domain.toUpperCase(), subjects: [`${domain}.>`] };
}

/** The dead-letter stream: `dlq.<original subject>` for every consumer. */
export const DLQ_STREAM: StreamDef = { name: DLQ_STREAM_NAME, subjects: ["dlq.>"] };

/** The shop's streams: one per producing domain, plus the dead-letter stream. */
export const SHOP_STREAMS: StreamDef[] = [domainStream("orders"), domainStream("payments"), domainStream("inventory"), DLQ_STREAM];

/** What {@link ensureStreams}/{@link ensureConsumer} did. */
export type EnsureAction = "created" | "updated" | "unchanged";

/**
 * Creates or updates streams so they match `defs`; safe to call at every start (a second call
 * changes nothing).
 *
 * Durability: file storage, one replica. nats-server acknowledges a publish once the message is
 * written to the OS, and fsyncs only periodically: every 2 minutes by default, and the Debian
 * nats-server 2.9.10 used here has no setting for it (later releases accept `sync_interval: always`). A killed nats-server loses nothing (the page cache survives), but a power
 * loss or kernel crash can lose acknowledged messages, as Jepsen showed in 2025 (RELIABILITY.md).
 * Our outbox rows are marked sent on that ack, so such a loss is not recovered automatically.
 */
export async function ensureStreams(jsm: JetStreamManager, defs: StreamDef[]): Promise<Record<string, EnsureAction>> {
  const actions: Record<string, EnsureAction> = {};
  for (const def of defs) {
    const want: Partial<StreamConfig> = {
      name: def.name,
      subjects: def.subjects,
      storage: StorageType.File,
      retention: RetentionPolicy.Limits,
      discard: DiscardPolicy.Old,
      num_replicas: 1,
      duplicate_window: nanos(DUPLICATE_WINDOW_MS),
      max_age: nanos(def.maxAgeMs ?? 0),
    };
    const current = await jsm.streams.info(def.name).catch((err: NatsError) => {
      if (isNotFound(err)) return undefined;
      throw err;
    });
    if (!current) {
      await jsm.streams.add(want);
      actions[def.name] = "created";
      continue;
    }
    const c = current.config;
    const same =
      sameSet(c.subjects ?? [], def.subjects) &&
      c.storage === want.storage &&
      c.duplicate_window === want.duplicate_window &&
      c.max_age === want.max_age &&
      c.retention === want.retention &&
      c.discard === want.discard;
    if (same) {
      actions[def.name] = "unchanged";
      continue;
    }
    // Storage and retention cannot change in place; the server refuses and we surface its error.
    await jsm.streams.update(def.name, { ...c, ...want });
    actions[def.name] = "updated";
  }
  return actions;
}

/** A durable pull consumer. */
export interface ConsumerDef {
  stream: string;
  durable: string;
  filterSubjects: string[];
  ackWaitMs: number;
}

/**
 * Creates or updates a durable pull consumer (explicit acks, from the start of the stream).
 * Several filter subjects need nats-server 2.10; nats.js refuses them on older servers.
 *
 * `max_deliver` is unlimited on the server: {@link EventConsumer} counts deliveries itself and moves
 * a message to the DLQ at its own limit. A server-side limit would strand a message whose last
 * delivery died with the process (no more deliveries, never dead-lettered).
 */
export async function ensureConsumer(jsm: JetStreamManager, def: ConsumerDef): Promise<EnsureAction> {
  const filter: Partial<ConsumerConfig> =
    def.filterSubjects.length === 1 ? { filter_subject: def.filterSubjects[0] } : { filter_subjects: def.filterSubjects };
  const want: Partial<ConsumerConfig> = {
    durable_name: def.durable,
    ack_policy: AckPolicy.Explicit,
    deliver_policy: DeliverPolicy.All,
    ack_wait: nanos(def.ackWaitMs),
    max_deliver: -1,
    ...filter,
  };
  const current = await jsm.consumers.info(def.stream, def.durable).catch((err: NatsError) => {
    if (isNotFound(err)) return undefined;
    throw err;
  });
  if (!current) {
    await jsm.consumers.add(def.stream, want);
    return "created";
  }
  const c = current.config;
  const currentFilters = c.filter_subjects ?? (c.filter_subject ? [c.filter_subject] : []);
  if (sameSet(currentFilters, def.filterSubjects) && c.ack_wait === want.ack_wait && c.max_deliver === want.max_deliver) {
    return "unchanged";
  }
  await jsm.consumers.update(def.stream, def.durable, { ack_wait: want.ack_wait, max_deliver: want.max_deliver, ...filter });
  return "updated";
}

function isNotFound(err: NatsError): boolean {
  // 10059 stream not found, 10014 consumer not found (JetStream API error codes).
  const code = err?.api_error?.err_code;
  return code === 10059 || code === 10014;
}

function sameSet(a: string[], b: string[]): boolean {
  return a.length === b.length && [...a].sort().join("\n") === [...b].sort().join("\n");
}
