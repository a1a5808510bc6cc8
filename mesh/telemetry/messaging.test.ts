import { context, ROOT_CONTEXT, trace } from "@opentelemetry/api";
import { create } from "@bufbuild/protobuf";
import { headers as natsHeaders, type NatsConnection } from "nats";
import { transaction } from "../db/index.js";
import { EventConsumer, on, OutboxRelay, ensureStreams, domainStream, enqueueEvent } from "../events/index.js";
import { connectNats, openTestDb, recordEffect, type TestDb } from "../events/test-support.js";
import { startNats, waitFor, type NatsServer } from "../infra/index.js";
import { OrderPlacedSchema } from "../../gen/orders/v1/events_pb.js";
import {
  createLogger,
  extractTraceContext,
  injectTraceHeaders,
  startTelemetry,
  traceMessagingProcess,
  traceMessagingPublish,
  tracer,
  recordEvent,
  withExtractedContext,
  type SpanRecord,
  type Telemetry,
} from "./index.js";
import { traceDetached } from "./messaging.js";

let telemetry: Telemetry;

beforeAll(() => {
  telemetry = startTelemetry({ serviceName: "messaging-test", instanceId: "messaging-test-1", env: {} });
});

afterAll(async () => {
  await telemetry.shutdown();
});

function spansOf(traceId: string): SpanRecord[] {
  return telemetry.recentSpans().filter((s) => s.traceId === traceId);
}

describe("trace headers for events", () => {
  it("inject → extract continues the trace in a child span", async () => {
    const root = tracer().startSpan("checkout");
    const headers = injectTraceHeaders({}, trace.setSpan(ROOT_CONTEXT, root));
    expect(headers.traceparent).toBe(`00-${root.spanContext().traceId}-${root.spanContext().spanId}-01`);
    root.end();

    // Outside any span (as in a consumer's loop), the headers alone carry the trace.
    const childTrace = context.with(ROOT_CONTEXT, () =>
      withExtractedContext(headers, () => {
        const child = tracer().startSpan("handle");
        child.end();
        return child.spanContext().traceId;
      }),
    );
    expect(childTrace).toBe(root.spanContext().traceId);
    const handle = spansOf(childTrace).find((s) => s.name === "handle")!;
    expect(handle.parentSpanId).toBe(root.spanContext().spanId);
    // NATS MsgHdrs work as a carrier too.
    const h = natsHeaders();
    h.set("traceparent", headers.traceparent);
    expect(trace.getSpanContext(extractTraceContext(h))?.traceId).toBe(root.spanContext().traceId);
    expect(trace.getSpanContext(extractTraceContext(natsHeaders()))).toBeUndefined();
  });

  it("publish and process spans chain producer → PRODUCER → CONSUMER with messaging attributes", async () => {
    const root = tracer().startSpan("place order");
    const stored = injectTraceHeaders({}, trace.setSpan(ROOT_CONTEXT, root));
    root.end();
    let sent: Record<string, string> = {};
    await traceMessagingPublish("orders.order_placed", stored, async (h) => void (sent = h), { messageId: "evt-1" });
    expect(sent.traceparent).not.toBe(stored.traceparent);
    await expect(
      traceMessagingProcess("orders.order_placed", sent, async () => {
        throw new Error("handler failed");
      }, { consumer: "notifications", deliveryCount: 2 }),
    ).rejects.toThrow("handler failed");

    const spans = spansOf(root.spanContext().traceId);
    const publish = spans.find((s) => s.kind === "producer")!;
    const processed = spans.find((s) => s.kind === "consumer")!;
    expect(publish).toMatchObject({
      name: "publish orders.order_placed",
      parentSpanId: root.spanContext().spanId,
      attributes: { "messaging.system": "nats", "messaging.destination.name": "orders.order_placed", "messaging.operation.type": "send", "messaging.message.id": "evt-1" },
    });
    expect(processed).toMatchObject({
      name: "process orders.order_placed",
      parentSpanId: publish.spanId,
      status: { code: "error", message: "handler failed" },
      attributes: { "messaging.system": "nats", "messaging.operation.type": "process", "messaging.consumer.group.name": "notifications", "meshwork.delivery_count": 2 },
    });
  });
});

describe("detached work", () => {
  it("continues the stored trace in an INTERNAL span, whose children and errors it carries", async () => {
    const request = tracer().startSpan("orders.v1.OrderService/CreateOrder");
    const stored = injectTraceHeaders({}, trace.setSpan(ROOT_CONTEXT, request));
    request.end();
    // Run from the root context, as a saga drive detached from its request is.
    await expect(
      context.with(ROOT_CONTEXT, () =>
        traceDetached("orders checkout saga", stored, async () => {
          tracer().startSpan("catalog.v1.CatalogService/GetProduct").end();
          recordEvent("saga_finished");
          throw new Error("drive failed");
        }, { "meshwork.order_id": "o-1" }),
      ),
    ).rejects.toThrow("drive failed");
    const spans = spansOf(request.spanContext().traceId);
    const saga = spans.find((s) => s.name === "orders checkout saga")!;
    expect(saga).toMatchObject({ kind: "internal", parentSpanId: request.spanContext().spanId, attributes: { "meshwork.order_id": "o-1" }, status: { code: "error" } });
    expect(saga.events.map((e) => e.name)).toEqual(["saga_finished", "exception"]);
    expect(spans.find((s) => s.name === "catalog.v1.CatalogService/GetProduct")?.parentSpanId).toBe(saga.spanId);
    // Nothing stored: a trace of its own.
    const lone = await traceDetached("sweep", { traceparent: "" }, async () => trace.getActiveSpan()!.spanContext().traceId);
    expect(lone).not.toBe(request.spanContext().traceId);
    expect(telemetry.recentSpans().find((s) => s.traceId === lone)?.parentSpanId).toBeUndefined();
  });
});

describe("one request = one trace through outbox, NATS and the consumer", () => {
  let nats: NatsServer;
  let nc: NatsConnection;
  let db: TestDb;
  const stops: (() => Promise<unknown>)[] = [];

  beforeAll(async () => {
    nats = await startNats();
    nc = await connectNats(nats.url);
    db = await openTestDb("sqlite");
  });

  afterAll(async () => {
    for (const s of stops.reverse()) await s();
    await nc?.close();
    await nats?.stop();
    await db?.dispose();
  });

  it("the consumer's process span and log line carry the trace of the request that wrote the outbox row", async () => {
    const def = domainStream("teltrace");
    await ensureStreams(await nc.jetstreamManager(), [def]);
    const subject = "teltrace.order_placed";
    const lines: Record<string, unknown>[] = [];
    const logger = createLogger({ service: "notifications", instance: "n-1", destination: { write: (s: string) => void lines.push(JSON.parse(s)) } });
    const consumer = new EventConsumer({
      nats: nc,
      database: db.database,
      durable: "notifications",
      stream: def.name,
      filterSubjects: [subject],
      handlers: [
        on(OrderPlacedSchema, async (p, env, trx, d) => {
          logger.info({ orderId: p.orderId }, "notify customer");
          await recordEffect.handle(p, env, trx, d);
        }),
      ],
    });
    await consumer.start();
    stops.push(() => consumer.stop());
    const relay = new OutboxRelay({ database: db.database, nats: () => nc, pollIntervalMs: 50 });
    relay.start();
    stops.push(() => relay.stop());

    // The "checkout" request: its span is active while the outbox row is written, and
    // enqueueEvent takes the trace context from the active span by itself.
    const request = tracer().startSpan("orders.v1.OrderService/CreateOrder");
    await context.with(trace.setSpan(ROOT_CONTEXT, request), () =>
      transaction(db.database, (trx) =>
        enqueueEvent(trx, { schema: OrderPlacedSchema, message: create(OrderPlacedSchema, { orderId: "o-trace" }), producer: "orders", aggregateId: "o-trace", subject }),
      ),
    );
    request.end();
    relay.kick();

    const traceId = request.spanContext().traceId;
    const processed = await waitFor(() => spansOf(traceId).find((s) => s.name === `process ${subject}`), { timeoutMs: 10_000, what: "the consumer's process span" });
    expect(processed.kind).toBe("consumer");
    expect(processed.attributes).toMatchObject({ "messaging.destination.name": subject, "messaging.consumer.group.name": "notifications", "meshwork.delivery_count": 1 });
    // request → the relay's PRODUCER span (a child of the context stored with the row) → the consumer's span.
    const publish = spansOf(traceId).find((s) => s.spanId === processed.parentSpanId)!;
    expect(publish).toMatchObject({
      name: `publish ${subject}`,
      kind: "producer",
      parentSpanId: request.spanContext().spanId,
      attributes: { "messaging.system": "nats", "messaging.destination.name": subject, "messaging.operation.type": "send" },
    });
    expect(publish.attributes["messaging.message.id"]).toEqual(expect.any(String));
    // One process span per message: the consumer traces it itself.
    expect(spansOf(traceId).filter((s) => s.kind === "consumer")).toHaveLength(1);
    const line = lines.find((l) => l.msg === "notify customer")!;
    expect(line).toMatchObject({ service: "notifications", trace_id: traceId, span_id: processed.spanId, orderId: "o-trace" });
  });
});
