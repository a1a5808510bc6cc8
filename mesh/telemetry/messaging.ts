import { context, propagation, ROOT_CONTEXT, SpanKind, SpanStatusCode, trace, type Attributes, type Context, type Span, type TextMapGetter } from "@opentelemetry/api";
import { meshMetrics } from "./metrics.js";
import { tracer } from "./rpc-tracing.js";

/*
 * Trace context across the event path: the request's traceparent is stored with the outbox row,
 * the relay's publish span continues it and re-injects its own span into the NATS headers, and the
 * consumer's process span continues from there. So one checkout is one trace: RPC spans, then
 * "publish orders.order_placed", then "process orders.order_placed" in the notifications service.
 * Attributes follow the OpenTelemetry messaging conventions (messaging.system = "nats").
 */

/** Headers as a plain object (outbox rows) or anything with `get` (NATS `MsgHdrs`, fetch `Headers`). */
export type HeaderCarrier = Record<string, string | undefined> | { get(key: string): string | null | undefined; keys(): Iterable<string> };

function hasGet(c: HeaderCarrier): c is { get(key: string): string | null | undefined; keys(): Iterable<string> } {
  return typeof (c as { get?: unknown }).get === "function" && typeof (c as { keys?: unknown }).keys === "function";
}

const carrierGetter: TextMapGetter<HeaderCarrier> = {
  // NATS returns "" for a missing header; treat it as absent.
  get: (c, key) => (hasGet(c) ? c.get(key) : c[key]) || undefined,
  keys: (c) => (hasGet(c) ? [...c.keys()] : Object.keys(c)),
};

/**
 * Writes the trace context of `ctx` (default: the active one) into `headers` as W3C
 * `traceparent`/`tracestate` and returns them. Empty when no span is active or no telemetry runs.
 */
export function injectTraceHeaders(headers: Record<string, string> = {}, ctx: Context = context.active()): Record<string, string> {
  propagation.inject(ctx, headers);
  return headers;
}

/** The context carried by `headers` (a non-recording parent), or the root context when there is none. */
export function extractTraceContext(headers: HeaderCarrier | undefined): Context {
  return headers ? propagation.extract(ROOT_CONTEXT, headers, carrierGetter) : ROOT_CONTEXT;
}

/** Runs `fn` with the trace context carried by `headers` active, so spans and log lines inside continue that trace. */
export function withExtractedContext<T>(headers: HeaderCarrier | undefined, fn: () => T): T {
  return context.with(extractTraceContext(headers), fn);
}

/** Optional details of a message for the messaging span attributes. */
export interface MessageInfo {
  /** Event id (`Nats-Msg-Id`). */
  messageId?: string;
  /** Durable consumer name (consumers only). */
  consumer?: string;
  /** 1 on the first delivery (consumers only). */
  deliveryCount?: number;
  attributes?: Attributes;
}

function messagingAttributes(destination: string, operationType: string, operationName: string, info: MessageInfo): Attributes {
  return {
    "messaging.system": "nats",
    "messaging.destination.name": destination,
    "messaging.operation.type": operationType,
    "messaging.operation.name": operationName,
    ...(info.messageId ? { "messaging.message.id": info.messageId } : {}),
    ...(info.consumer ? { "messaging.consumer.group.name": info.consumer } : {}),
    ...(info.deliveryCount !== undefined ? { "meshwork.delivery_count": info.deliveryCount } : {}),
    ...info.attributes,
  };
}

async function inSpan<T>(span: Span, ctx: Context, fn: () => Promise<T>): Promise<T> {
  try {
    return await context.with(ctx, fn);
  } catch (e) {
    span.setStatus({ code: SpanStatusCode.ERROR, message: e instanceof Error ? e.message : String(e) });
    if (e instanceof Error) span.recordException(e);
    throw e;
  } finally {
    span.end();
  }
}

/**
 * Wraps one publish in a PRODUCER span "publish <destination>". The parent is the trace context in
 * `headers` (the request that wrote the outbox row) or else the active context. `fn` receives a
 * copy of `headers` whose traceparent points at the publish span: send those with the message.
 */
export function traceMessagingPublish<T>(
  destination: string,
  headers: Record<string, string>,
  fn: (headers: Record<string, string>) => Promise<T>,
  info: MessageInfo = {},
): Promise<T> {
  const parent = headers.traceparent ? extractTraceContext(headers) : context.active();
  const span = tracer().startSpan(`publish ${destination}`, { kind: SpanKind.PRODUCER, attributes: messagingAttributes(destination, "send", "publish", info) }, parent);
  const ctx = trace.setSpan(parent, span);
  const out = { ...headers };
  propagation.inject(ctx, out);
  return inSpan(span, ctx, () => fn(out));
}

/**
 * Wraps the processing of one message in a CONSUMER span "process <destination>", a child of the
 * producer's context (given, or extracted from the message headers). Errors thrown by `fn` mark
 * the span as failed and are rethrown.
 */
export function traceMessagingProcess<T>(destination: string, parent: Context | HeaderCarrier | undefined, fn: () => Promise<T>, info: MessageInfo = {}): Promise<T> {
  const parentCtx = isContext(parent) ? parent : extractTraceContext(parent);
  const span = tracer().startSpan(`process ${destination}`, { kind: SpanKind.CONSUMER, attributes: messagingAttributes(destination, "process", "process", info) }, parentCtx);
  return inSpan(span, trace.setSpan(parentCtx, span), fn);
}

function isContext(v: unknown): v is Context {
  return typeof v === "object" && v !== null && typeof (v as Context).getValue === "function" && typeof (v as Context).setValue === "function";
}

/** The parts of a JetStream message the consumer hook reads (nats `JsMsg` fits). */
export interface ConsumedMessage {
  subject: string;
  headers?: { get(key: string): string };
  info: { stream: string; consumer: string; deliveryCount: number };
}

/**
 * What mesh/events' EventConsumer wraps every message in (it applies this itself; do not pass it
 * as `onMessage` as well, or each message gets two spans): a process span per message (child of
 * the producer's trace, so of the relay's publish span) and `meshwork_consumer_redeliveries_total`
 * for deliveries after the first. The consumer naks handler failures itself, so such a span ends
 * OK; the redelivery shows.
 */
export function eventConsumerHook(): (msg: ConsumedMessage, traceContext: Context, next: () => Promise<void>) => Promise<void> {
  return (msg, traceContext, next) => {
    const { stream, consumer, deliveryCount } = msg.info;
    if (deliveryCount > 1) meshMetrics.consumerRedelivery(consumer, stream);
    return traceMessagingProcess(msg.subject, traceContext, next, { messageId: msg.headers?.get("Nats-Msg-Id") || undefined, consumer, deliveryCount });
  };
}

/**
 * Runs background work that belongs to an earlier request (a saga drive resumed by a sweep, a job
 * started by a handler but outliving it) in an INTERNAL span `name`, a child of the trace context
 * stored with that work (`stored.traceparent`), so its outgoing calls, events and log lines join
 * the request's trace. Without a stored context the span starts a new trace. Errors thrown by `fn`
 * mark the span failed and are rethrown.
 */
export function traceDetached<T>(name: string, stored: HeaderCarrier | undefined, fn: () => Promise<T>, attributes: Attributes = {}): Promise<T> {
  const parent = extractTraceContext(stored);
  const span = tracer().startSpan(name, { kind: SpanKind.INTERNAL, attributes }, parent);
  return inSpan(span, trace.setSpan(parent, span), fn);
}
