/**
 * A repair loop that runs one step at a time, however often it is requested: re-registering after
 * a lost lease, re-reading a prefix after a cancelled watch. A request while a run is going makes
 * that run step once more; a step that throws is repeated (its own backoff paces it). Used by the
 * registry and the discovery watcher, whose repairs must never overlap (duplicate leases, racing
 * reads).
 */
export class SingleFlightLoop {
  private wanted = false;
  private running = false;
  private done: Promise<void> = Promise.resolve();

  /** `step` does one repair; `stopped` ends the loop between steps. */
  constructor(
    private readonly step: () => Promise<void>,
    private readonly stopped: () => boolean,
  ) {}

  /** Asks for a step; starts the loop unless it is already running. */
  request(): void {
    this.wanted = true;
    if (this.running || this.stopped()) return;
    this.running = true;
    this.done = this.run();
  }

  /** Resolves when the current run (if any) has ended. */
  settled(): Promise<void> {
    return this.done;
  }

  private async run(): Promise<void> {
    // `running` is cleared in the same synchronous step as the last `wanted` check, so a
    // request() arriving at any point either is seen by this run or starts a new one.
    while (this.wanted && !this.stopped()) {
      this.wanted = false;
      try {
        await this.step();
      } catch {
        this.wanted = true;
      }
    }
    this.running = false;
  }
}
