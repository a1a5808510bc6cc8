import { Client, credentials, type ChannelOptions } from "@grpc/grpc-js";

/**
 * Channel settings every Meshwork client uses. Keepalive pings must be no more frequent than the
 * servers allow (mesh/server uses the same 30 s), or a strict server answers GOAWAY too_many_pings.
 */
export const CLIENT_CHANNEL_OPTIONS: ChannelOptions = {
  // Detects a dead peer on an idle connection within ~35 s without tripping ping limits.
  "grpc.keepalive_time_ms": 30_000,
  // A healthy loopback/LAN peer answers a ping in well under 5 s.
  "grpc.keepalive_timeout_ms": 5_000,
  // Watch streams can be idle for minutes; keep checking their connection.
  "grpc.keepalive_permit_without_calls": 1,
  // Matches the servers' explicit 4 MiB receive limit.
  "grpc.max_receive_message_length": 4 * 1024 * 1024,
  "grpc.max_send_message_length": 4 * 1024 * 1024,
  // Reconnect quickly after a replica restarts: 100 ms first backoff instead of grpc's 1 s.
  "grpc.initial_reconnect_backoff_ms": 100,
  "grpc.max_reconnect_backoff_ms": 5_000,
  // Our balancer picks endpoints and retries; grpc-js's own retry layer would double-count.
  "grpc.enable_retries": 0,
};

// A removed endpoint's channel is closed this long after it left the endpoint set: a draining
// replica (DEFAULT_DRAIN_GRACE_MS = 10 s) still answers the calls in flight on it, and grpc-js
// fails calls still waiting for a pick on a closed channel ("Channel closed before call started").
const REMOVED_CHANNEL_GRACE_MS = 10_000;

/** One grpc-js channel per endpoint address, created on first use and reused. */
export class ChannelPool {
  private readonly clients = new Map<string, Client>();
  /** Channels of removed endpoints, closed when their grace period ends unless the endpoint returns. */
  private readonly closing = new Map<string, { client: Client; timer: NodeJS.Timeout }>();

  constructor(private readonly options: ChannelOptions = {}) {}

  /** The channel for `address`. */
  get(address: string): Client {
    let c = this.clients.get(address);
    if (!c) {
      const parked = this.closing.get(address);
      if (parked) {
        clearTimeout(parked.timer);
        this.closing.delete(address);
        c = parked.client;
      } else {
        c = new Client(address, credentials.createInsecure(), { ...CLIENT_CHANNEL_OPTIONS, ...this.options });
      }
      this.clients.set(address, c);
    }
    return c;
  }

  /** Closes channels for addresses not in `keep` once calls in flight on them have had their grace period. */
  retain(keep: ReadonlySet<string>): void {
    for (const [addr, c] of this.clients) {
      if (!keep.has(addr)) {
        this.clients.delete(addr);
        const timer = setTimeout(() => {
          this.closing.delete(addr);
          c.close();
        }, REMOVED_CHANNEL_GRACE_MS);
        timer.unref();
        this.closing.set(addr, { client: c, timer });
      }
    }
  }

  close(): void {
    for (const c of this.clients.values()) c.close();
    this.clients.clear();
    for (const { client, timer } of this.closing.values()) {
      clearTimeout(timer);
      client.close();
    }
    this.closing.clear();
  }
}
