import { headers as natsHeaders, type JetStreamClient, type JetStreamManager, type JsMsg, type MsgHdrs, type NatsConnection, type NatsError } from "nats";
import { Headers } from "./headers.js";
import { DLQ_STREAM_NAME } from "./streams.js";

/** One dead-lettered message. */
export interface DlqEntry {
  /** Sequence in the DLQ stream: what {@link redriveDlq} takes. */
  seq: number;
  /** DLQ subject, e.g. `dlq.orders.order_placed`. */
  subject: string;
  /** Where it came from, e.g. `orders.order_placed`. */
  originalSubject: string;
  /** Durable consumer that gave up on it. */
  consumer: string;
  reason: string;
  eventId: string;
  /** Deliveries to that consumer before it gave up. */
  deliveries: number;
  /** Stream and sequence of the original message. */
  originalStream: string;
  originalSeq: number;
  /** When it was dead-lettered. */
  time: Date;
}

// Header values are single lines; reasons are error messages of any length.
const MAX_REASON_CHARS = 1_000;

/**
 * Publishes a delivered message to `<prefix>.<subject>` with the reason and origin in headers.
 * Its `Nats-Msg-Id` names the consumer and original sequence, so a second attempt after a crash
 * (before the original was terminated) is dropped by the dedup window.
 */
export async function deadLetter(
  js: JetStreamClient,
  msg: JsMsg,
  o: { consumer: string; reason: string; prefix: string; eventId?: string },
): Promise<void> {
  const h = copyHeaders(msg.headers);
  const eventId = o.eventId ?? msg.headers?.get(Headers.msgId) ?? "";
  h.set(Headers.dlqReason, o.reason.replace(/[\r\n]+/g, " ").slice(0, MAX_REASON_CHARS));
  h.set(Headers.dlqConsumer, o.consumer);
  h.set(Headers.dlqSubject, msg.subject);
  h.set(Headers.dlqStream, msg.info.stream);
  h.set(Headers.dlqStreamSeq, String(msg.info.streamSequence));
  h.set(Headers.dlqDeliveries, String(msg.info.deliveryCount));
  if (eventId) h.set(Headers.dlqEventId, eventId);
  await js.publish(`${o.prefix}.${msg.subject}`, msg.data, {
    headers: h,
    msgID: `dlq:${o.consumer}:${msg.info.stream}:${msg.info.streamSequence}`,
  });
}

/** Lists up to `limit` (default 100: a screenful for the CLI) dead letters, oldest first. */
export async function listDlq(jsm: JetStreamManager, opts: { limit?: number; stream?: string } = {}): Promise<DlqEntry[]> {
  const stream = opts.stream ?? DLQ_STREAM_NAME;
  const limit = opts.limit ?? 100;
  const { state } = await jsm.streams.info(stream);
  const entries: DlqEntry[] = [];
  if (state.messages === 0) return entries;
  // Redriven entries are deleted, leaving gaps in the sequence: skip them.
  for (let seq = state.first_seq; seq <= state.last_seq && entries.length < limit; seq++) {
    const m = await jsm.streams.getMessage(stream, { seq }).catch((err: NatsError) => {
      if (err?.api_error?.err_code === 10037) return undefined; // no message found
      throw err;
    });
    if (!m) continue;
    const hv = (k: string) => m.header?.get(k) ?? "";
    entries.push({
      seq: m.seq,
      subject: m.subject,
      originalSubject: hv(Headers.dlqSubject),
      consumer: hv(Headers.dlqConsumer),
      reason: hv(Headers.dlqReason),
      eventId: hv(Headers.dlqEventId),
      deliveries: Number(hv(Headers.dlqDeliveries) || 0),
      originalStream: hv(Headers.dlqStream),
      originalSeq: Number(hv(Headers.dlqStreamSeq) || 0),
      time: m.time,
    });
  }
  return entries;
}

/**
 * Republishes dead letters to their original subjects and deletes them from the DLQ.
 *
 * The copy gets a new `Nats-Msg-Id`, `<event id>:redrive:<dlq seq>`: reusing the event id would
 * make JetStream drop it as a duplicate when the redrive happens within 2 minutes of the original
 * publish. Including the DLQ sequence keeps a retried redrive (crash before the delete) deduplicated.
 * The copy reaches every consumer of the subject, not only the one that gave up; the others
 * already have the event id in their inbox and only ack it. The envelope (and so the event id) is
 * unchanged, so the effect still happens at most once per consumer.
 */
export async function redriveDlq(
  nc: NatsConnection,
  seqs: number[],
  opts: { stream?: string } = {},
): Promise<{ seq: number; subject: string; eventId: string }[]> {
  const stream = opts.stream ?? DLQ_STREAM_NAME;
  const jsm = await nc.jetstreamManager();
  const js = nc.jetstream();
  const done: { seq: number; subject: string; eventId: string }[] = [];
  for (const seq of seqs) {
    const m = await jsm.streams.getMessage(stream, { seq });
    const subject = m.header?.get(Headers.dlqSubject) || m.subject.split(".").slice(1).join(".");
    const eventId = m.header?.get(Headers.dlqEventId) ?? "";
    await js.publish(subject, m.data, { headers: copyHeaders(m.header), msgID: `${eventId || "unknown"}:redrive:${seq}` });
    await jsm.streams.deleteMessage(stream, seq, false);
    done.push({ seq, subject, eventId });
  }
  return done;
}

/** The headers that travel with an event (trace context, deadline…), without dedup and DLQ ones. */
function copyHeaders(src: MsgHdrs | undefined): MsgHdrs {
  const h = natsHeaders();
  for (const key of src?.keys() ?? []) {
    if (key === Headers.msgId || key.startsWith("Meshwork-Dlq-")) continue;
    for (const v of src!.values(key)) h.append(key, v);
  }
  return h;
}
