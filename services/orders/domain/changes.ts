import { EventEmitter } from "node:events";

/** A subscription to one order's changes; see {@link OrderChanges.listen}. */
export interface ChangeListener {
  /** Resolves at the next change (at once if one came since the last call), after `ms`, or when `signal` aborts. */
  next(ms: number, signal?: AbortSignal): Promise<void>;
  close(): void;
}

/**
 * In-process change notifications per order id: whoever writes an order calls {@link notify};
 * waiters (CreateOrder, CancelOrder, WatchOrder) wake at once instead of polling. Changes made by
 * another replica are not seen here, so waiters also poll at a slow interval.
 */
export class OrderChanges {
  private readonly emitter = new EventEmitter();

  constructor() {
    // One listener per waiting call: unbounded by design, bounded by the server's concurrency.
    this.emitter.setMaxListeners(0);
  }

  notify(orderId: string): void {
    this.emitter.emit(orderId);
  }

  /** Subscribes before the caller reads the order, so a change between the read and the wait is not missed. */
  listen(orderId: string): ChangeListener {
    let dirty = false;
    let wake: (() => void) | undefined;
    const onChange = () => {
      dirty = true;
      wake?.();
    };
    this.emitter.on(orderId, onChange);
    return {
      next: (ms, signal) => {
        if (dirty || signal?.aborted) {
          dirty = false;
          return Promise.resolve();
        }
        return new Promise<void>((resolve) => {
          const done = () => {
            clearTimeout(timer);
            signal?.removeEventListener("abort", done);
            wake = undefined;
            dirty = false;
            resolve();
          };
          const timer = setTimeout(done, ms);
          signal?.addEventListener("abort", done, { once: true });
          wake = done;
        });
      },
      close: () => {
        this.emitter.off(orderId, onChange);
        wake?.();
      },
    };
  }
}
