/**
 * In-process notifications "the stock of product X changed", published by the use cases after a
 * transaction commits. Carries no values: a watcher re-reads the stock, so out-of-order
 * notifications of concurrent commits can never leave it showing an older state.
 */
export class StockChanges {
  private readonly listeners = new Map<string, Set<() => void>>();
  private isClosed = false;

  /** Calls `fn` after every change of `productId` (and once on close); returns the unsubscribe function. */
  subscribe(productId: string, fn: () => void): () => void {
    let set = this.listeners.get(productId);
    if (!set) this.listeners.set(productId, (set = new Set()));
    set.add(fn);
    return () => {
      set.delete(fn);
      if (set.size === 0 && this.listeners.get(productId) === set) this.listeners.delete(productId);
    };
  }

  /** Notifies the watchers of each product. */
  publish(productIds: Iterable<string>): void {
    for (const id of productIds) for (const fn of [...(this.listeners.get(id) ?? [])]) fn();
  }

  /** Number of active subscriptions (for tests and metrics). */
  get watchers(): number {
    let n = 0;
    for (const set of this.listeners.values()) n += set.size;
    return n;
  }

  /** True once {@link close} was called. */
  get closed(): boolean {
    return this.isClosed;
  }

  /** Ends every watch (the server is draining) and refuses new ones. */
  close(): void {
    this.isClosed = true;
    for (const set of this.listeners.values()) for (const fn of [...set]) fn();
  }
}
