/** Options for {@link waitFor}. */
export interface WaitOptions {
  /** Give up after this long. */
  timeoutMs?: number;
  /** Pause between checks. */
  intervalMs?: number;
  /** Named in the timeout error. */
  what?: string;
}

/**
 * Polls `check` until it returns a value other than `undefined`/`false` or the deadline passes.
 * The way tests and scripts wait for a condition: never a bare sleep.
 */
export async function waitFor<T>(check: () => T | Promise<T>, opts: WaitOptions = {}): Promise<Exclude<T, false | undefined>> {
  // 20 s covers a cold etcd or nats start on a loaded 2-core CI machine.
  const timeoutMs = opts.timeoutMs ?? 20_000;
  // 25 ms keeps the added latency small without busy-looping.
  const intervalMs = opts.intervalMs ?? 25;
  const deadline = Date.now() + timeoutMs;
  let lastError: unknown;
  for (;;) {
    try {
      const v = await check();
      if (v !== undefined && v !== false) return v as Exclude<T, false | undefined>;
    } catch (e) {
      lastError = e;
    }
    if (Date.now() >= deadline) {
      const why = lastError instanceof Error ? `: last error ${lastError.message}` : "";
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${opts.what ?? "condition"}${why}`);
    }
    await new Promise((r) => setTimeout(r, intervalMs));
  }
}
