import { connect, type NatsConnection } from "nats";
import type { Database } from "../db/index.js";
import { OutboxRelay, type EventsLogger } from "./relay.js";
import { domainStream, ensureStreams } from "./streams.js";

/** A service's outbox relay, or a stand-in when no broker is configured. */
export interface EventRelay {
  /** Publish soon: call after a transaction that enqueued events committed. */
  kick(): void;
  /** Stops publishing and closes the broker connection. */
  stop(): Promise<void>;
}

// 500 ms between reconnect attempts: the broker coming back is noticed within half a second, at
// two connection attempts a second while it is down.
const RECONNECT_WAIT_MS = 500;

/**
 * Publishes the outbox to NATS JetStream at `natsUrl` (creating the stream of `domain`, e.g. `PAYMENTS` for "payments", if needed).
 * Without a URL nothing is published: events accumulate in the outbox table and go out once the
 * service is restarted with NATS_URL set. The connection is made in the background, so the
 * service starts (and serves calls) while the broker is down; the relay backs off until it is up.
 */
export function startEventRelay(opts: { database: Database; natsUrl: string | undefined; domain: string; logger?: EventsLogger }): EventRelay {
  if (!opts.natsUrl) return { kick: () => undefined, stop: async () => undefined };
  let nc: NatsConnection | undefined;
  let stopped = false;
  const relay = new OutboxRelay({ database: opts.database, nats: () => nc, logger: opts.logger });
  relay.start();
  void (async () => {
    const conn = await connect({ servers: opts.natsUrl, maxReconnectAttempts: -1, reconnectTimeWait: RECONNECT_WAIT_MS, waitOnFirstConnect: true });
    if (stopped) return void (await conn.close());
    // Until the stream exists publishes fail; retry with the relay's own rhythm.
    for (;;) {
      try {
        await ensureStreams(await conn.jetstreamManager(), [domainStream(opts.domain)]);
        break;
      } catch (err) {
        opts.logger?.warn({ err }, "creating the event stream failed; retrying");
        await new Promise((r) => setTimeout(r, RECONNECT_WAIT_MS));
        if (stopped) return void (await conn.close());
      }
    }
    nc = conn;
    relay.kick();
  })().catch((err: unknown) => opts.logger?.warn({ err }, "connecting to NATS failed"));
  return {
    kick: () => relay.kick(),
    async stop() {
      stopped = true;
      await relay.stop();
      await nc?.drain().catch(() => nc?.close());
    },
  };
}
