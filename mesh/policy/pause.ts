/**
 * A backoff sleep that can be cut short: `wake()` ends the sleep in progress at once (a close, a
 * stop, new work). The repair loops of the registry and discovery and the event relay and
 * consumer pace their retries with one each.
 */
export class Pause {
  private cut: (() => void) | undefined;

  /** Resolves after `ms`, or at the next {@link wake}. */
  sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const done = () => {
        clearTimeout(timer);
        if (this.cut === done) this.cut = undefined;
        resolve();
      };
      const timer = setTimeout(done, ms);
      this.cut = done;
    });
  }

  /** Ends the sleep in progress, if any; no effect on a later one. */
  wake(): void {
    this.cut?.();
  }
}
