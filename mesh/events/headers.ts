/** NATS header names Meshwork events carry, besides `Nats-Msg-Id` (= the event id). */
export const Headers = {
  /** W3C Trace Context of the operation that produced the event. */
  traceparent: "traceparent",
  tracestate: "tracestate",
  /** Absolute deadline of the originating request, epoch milliseconds. */
  deadline: "Meshwork-Deadline",
  /** Set on dead-lettered messages. */
  dlqReason: "Meshwork-Dlq-Reason",
  dlqConsumer: "Meshwork-Dlq-Consumer",
  dlqSubject: "Meshwork-Dlq-Subject",
  dlqStream: "Meshwork-Dlq-Stream",
  dlqStreamSeq: "Meshwork-Dlq-Stream-Seq",
  dlqDeliveries: "Meshwork-Dlq-Deliveries",
  dlqEventId: "Meshwork-Dlq-Event-Id",
  /** JetStream's de-duplication header. */
  msgId: "Nats-Msg-Id",
} as const;
