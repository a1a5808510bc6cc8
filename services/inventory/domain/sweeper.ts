import type { Inventory } from "./inventory.js";

/** Minimal logger (pino-compatible). */
export interface SweeperLogger {
  warn(obj: object, msg: string): void;
}

/**
 * Runs {@link Inventory.sweepExpired} every `intervalMs` until stopped. A sweep that fails (the
 * database is briefly unreachable) is logged and retried at the next tick; ticks never overlap.
 */
export class ExpirySweeper {
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<void> | undefined;
  private stopped = true;

  constructor(
    private readonly inventory: Inventory,
    private readonly intervalMs: number,
    private readonly logger?: SweeperLogger,
  ) {}

  /** Starts sweeping; the first sweep runs after one interval. */
  start(): this {
    if (!this.stopped) return this;
    this.stopped = false;
    this.schedule();
    return this;
  }

  /** Stops the timer and waits for a sweep in progress. */
  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.timer);
    await this.running;
  }

  private schedule(): void {
    this.timer = setTimeout(() => {
      this.running = this.inventory
        .sweepExpired()
        .then(
          () => undefined,
          (err: unknown) => this.logger?.warn({ err }, "expiry sweep failed; retrying at the next tick"),
        )
        .finally(() => {
          this.running = undefined;
          if (!this.stopped) this.schedule();
        });
    }, this.intervalMs);
  }
}
