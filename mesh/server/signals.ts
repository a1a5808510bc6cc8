import type { DrainHooks, MeshServer } from "./server.js";

/** Options of {@link runUntilSignal}. */
export interface RunUntilSignalOptions {
  /** Drain hooks (e.g. the registry's deregister). */
  hooks?: DrainHooks;
  /** Called once with the first signal, before draining (for a log line). */
  onSignal?: (signal: NodeJS.Signals) => void;
  /** Runs after the drain, before exit(0): close databases, brokers, telemetry. */
  afterDrain?: () => Promise<void>;
  /** Default SIGTERM (Kubernetes, process managers) and SIGINT (Ctrl-C). */
  signals?: NodeJS.Signals[];
  /** Default `process.exit`; replaceable for tests. */
  exit?: (code: number) => void;
}

/**
 * For a service's main.ts: on the first SIGTERM/SIGINT, drain the server once, run
 * `afterDrain`, then exit 0 (1 if either failed); a second signal force-closes and exits 1 at
 * once. Returns a function that removes the handlers.
 */
export function runUntilSignal(server: Pick<MeshServer, "drain" | "forceShutdown">, opts: RunUntilSignalOptions = {}): () => void {
  const signals = opts.signals ?? ["SIGTERM", "SIGINT"];
  const exit = opts.exit ?? ((code: number) => process.exit(code));
  let received = false;
  const handler = (signal: NodeJS.Signals) => {
    if (received) {
      server.forceShutdown();
      exit(1);
      return;
    }
    received = true;
    opts.onSignal?.(signal);
    server
      .drain(opts.hooks)
      .then(() => opts.afterDrain?.())
      .then(
        () => exit(0),
        () => exit(1),
      );
  };
  for (const s of signals) process.on(s, handler);
  return () => {
    for (const s of signals) process.off(s, handler);
  };
}
