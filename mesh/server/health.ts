import { Code, ConnectError, type ServiceImpl } from "@connectrpc/connect";
import { Health, HealthCheckResponse_ServingStatus as ServingStatus } from "../../gen/grpc/health/v1/health_pb.js";

export { ServingStatus };

// The health spec (grpc/grpc doc/health-checking.md) lets List refuse more than 100 services.
const LIST_LIMIT = 100;

type Listener = (service: string, status: ServingStatus) => void;

/**
 * The serving status of each service a server knows, behind `grpc.health.v1.Health`.
 * Service `""` is the server as a whole. Everything starts NOT_SERVING; after {@link shutdown}
 * every status is NOT_SERVING and stays so (later updates are ignored), as in grpc-go.
 */
export class HealthState {
  private readonly statuses = new Map<string, ServingStatus>();
  private readonly listeners = new Set<Listener>();
  private readonly closers = new Set<() => void>();
  private frozen = false;
  private ended = false;

  constructor(services: Iterable<string> = []) {
    this.statuses.set("", ServingStatus.NOT_SERVING);
    for (const s of services) this.statuses.set(s, ServingStatus.NOT_SERVING);
  }

  /** The status of `service`, or undefined when the service is unknown. */
  get(service: string): ServingStatus | undefined {
    return this.statuses.get(service);
  }

  /** Sets one service's status (a new name becomes known). Ignored after {@link shutdown}. */
  setStatus(service: string, status: ServingStatus): void {
    if (this.frozen) return;
    this.update(service, status);
  }

  /** Sets every known service, including `""`, to `status`. Ignored after {@link shutdown}. */
  setAll(status: ServingStatus): void {
    if (this.frozen) return;
    for (const s of [...this.statuses.keys()]) this.update(s, status);
  }

  /** A snapshot of every known service and its status. */
  list(): Map<string, ServingStatus> {
    return new Map(this.statuses);
  }

  /** True once {@link shutdown} was called. */
  get isShutdown(): boolean {
    return this.frozen;
  }

  /** Every service NOT_SERVING for good: the server is draining. */
  shutdown(): void {
    if (this.frozen) return;
    for (const s of [...this.statuses.keys()]) this.update(s, ServingStatus.NOT_SERVING);
    this.frozen = true;
  }

  /** Ends every Watch stream (and any opened later), so they do not hold a graceful stop open. */
  closeWatchers(): void {
    this.ended = true;
    for (const close of [...this.closers]) close();
  }

  /**
   * The statuses a Watch call sends: the current one (SERVICE_UNKNOWN for an unknown service)
   * and then each change, until `signal` aborts or {@link closeWatchers} is called. A consumer
   * that reads slowly gets the latest status, not a backlog (as grpc-go's one-slot channel).
   */
  async *watch(service: string, signal: AbortSignal): AsyncGenerator<ServingStatus> {
    let pending: ServingStatus | undefined = this.statuses.get(service) ?? ServingStatus.SERVICE_UNKNOWN;
    let wake: (() => void) | undefined;
    let closed = this.ended || signal.aborted;
    const notify = () => {
      wake?.();
      wake = undefined;
    };
    const listener: Listener = (s, status) => {
      if (s !== service) return;
      pending = status;
      notify();
    };
    const close = () => {
      closed = true;
      notify();
    };
    this.listeners.add(listener);
    this.closers.add(close);
    signal.addEventListener("abort", close);
    let last: ServingStatus | undefined;
    try {
      // The current status goes out even to a watcher that arrives after closeWatchers().
      for (;;) {
        if (pending !== undefined && pending !== last) {
          last = pending;
          pending = undefined;
          yield last;
        }
        if (closed) return;
        if (pending === undefined || pending === last) await new Promise<void>((resolve) => (wake = resolve));
      }
    } finally {
      this.listeners.delete(listener);
      this.closers.delete(close);
      signal.removeEventListener("abort", close);
    }
  }

  private update(service: string, status: ServingStatus): void {
    if (this.statuses.get(service) === status) return;
    this.statuses.set(service, status);
    for (const l of [...this.listeners]) l(service, status);
  }
}

/** `grpc.health.v1.Health` answered from `state`, for {@link grpcImplementation}. */
export function healthService(state: HealthState): ServiceImpl<typeof Health> {
  return {
    check(req) {
      const status = state.get(req.service);
      if (status === undefined) throw new ConnectError(`unknown service "${req.service}"`, Code.NotFound);
      return { status };
    },
    list() {
      const all = state.list();
      if (all.size > LIST_LIMIT) throw new ConnectError(`${all.size} services exceed the List limit of ${LIST_LIMIT}`, Code.ResourceExhausted);
      const statuses: Record<string, { status: ServingStatus }> = {};
      for (const [name, status] of all) statuses[name] = { status };
      return { statuses };
    },
    async *watch(req, ctx) {
      for await (const status of state.watch(req.service, ctx.signal)) yield { status };
    },
  };
}

export { Health };
