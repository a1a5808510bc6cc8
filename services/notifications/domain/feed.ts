import { EventEmitter } from "node:events";

/**
 * In-process wake-ups per customer: the consumer calls {@link notify} after committing new
 * notifications, and watchers re-read at once. Notifications written by another replica (replicas
 * share the durable consumer) are found by the watchers' slow poll instead.
 */
export class NotificationFeed {
  private readonly emitter = new EventEmitter();

  constructor() {
    // One listener per open WatchNotifications stream: bounded by the server's concurrency.
    this.emitter.setMaxListeners(0);
  }

  /** Open watches of a customer (for metrics and tests). */
  watchers(customerId: string): number {
    return this.emitter.listenerCount(customerId);
  }

  notify(customerId: string): void {
    this.emitter.emit(customerId);
  }

  /** Resolves at the customer's next notification, after `ms`, or when `signal` aborts. */
  next(customerId: string, ms: number, signal: AbortSignal): Promise<void> {
    return new Promise((resolve) => {
      const done = () => {
        clearTimeout(timer);
        this.emitter.off(customerId, done);
        signal.removeEventListener("abort", done);
        resolve();
      };
      const timer = setTimeout(done, ms);
      this.emitter.on(customerId, done);
      if (signal.aborted) return done();
      signal.addEventListener("abort", done, { once: true });
    });
  }
}
