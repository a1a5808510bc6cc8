import { Code, ConnectError } from "@connectrpc/connect";
import { CircuitState, SamplingBreaker, type IBreaker } from "cockatiel";

/** State of a {@link CircuitBreaker}. */
export type BreakerState = "closed" | "open" | "half-open";

/** How a logical call ended, as the breaker counts it. */
export type CallOutcome = "success" | "failure" | "neutral";

/** Options of {@link CircuitBreaker}. */
export interface CircuitBreakerOptions {
  /** Time in the open state before one probe is let through. Hystrix's sleep window: 5 s. */
  halfOpenAfterMs?: number;
  /**
   * Decides when failures open the circuit (cockatiel's ConsecutiveBreaker, SamplingBreaker or
   * CountBreaker). Default: Hystrix's figures, ≥ 20 requests in a 10 s window with more than 50 %
   * failing. Per-endpoint failure accrual (Linkerd's 7 consecutive) is the balancer's outlier
   * ejection; this breaker guards the whole service, so a failure rate fits it better.
   */
  breaker?: () => IBreaker;
  /** Called on every state change. */
  onStateChange?: (state: BreakerState) => void;
}

/** Codes that say the service, not the request, is failing. Others are answers or the caller's doing. */
const FAILURE_CODES = new Set<Code>([Code.Unavailable, Code.DeadlineExceeded, Code.Internal, Code.Unknown]);

/**
 * How a logical call's result counts: endpoint-ish failures count against the service; the
 * caller's own cancellation and deliberate load shedding (which carries its own pushback) say
 * nothing; application answers (NotFound, InvalidArgument, ...) prove the service works.
 */
export function breakerOutcome(ok: boolean, code: Code | undefined): CallOutcome {
  if (ok || code === undefined) return "success";
  if (FAILURE_CODES.has(code)) return "failure";
  if (code === Code.Canceled || code === Code.ResourceExhausted) return "neutral";
  return "success";
}

/**
 * A circuit breaker for one upstream service. cockatiel decides when to trip (its IBreaker); the
 * state machine is here because cockatiel's CircuitBreakerPolicy must wrap the call as one function
 * and, when half-open, queues other callers behind the probe without their deadline, while the
 * transport needs "admit now or fail fast" and a separate completion. Half-open lets exactly one
 * probe through; every other call fails fast until the probe's verdict.
 */
export class CircuitBreaker {
  private current: BreakerState = "closed";
  private openedAt = 0;
  private probing = false;
  private readonly halfOpenAfterMs: number;
  private readonly breaker: IBreaker;

  constructor(
    /** Named in the fail-fast error. */
    readonly service: string,
    private readonly opts: CircuitBreakerOptions = {},
  ) {
    this.halfOpenAfterMs = opts.halfOpenAfterMs ?? 5_000;
    // 20 requests in 10 s = 2 rps, Hystrix's requestVolumeThreshold; 0.5 its error threshold.
    this.breaker = opts.breaker?.() ?? new SamplingBreaker({ threshold: 0.5, duration: 10_000, minimumRps: 2 });
  }

  /** The state; an open circuit whose wait has passed turns half-open at the next call. */
  get state(): BreakerState {
    return this.current;
  }

  /**
   * The completion of every call admitted while closed: such a call's outcome is all it reports,
   * so one function serves them all instead of a closure per call.
   */
  private readonly closedCompletion = (outcome: CallOutcome): void => this.closedDone(outcome);

  /**
   * Admits a call or throws Unavailable (open, or half-open with the probe in flight). Returns the
   * completion to call exactly once with the call's outcome.
   */
  admit(now?: number): (outcome: CallOutcome) => void {
    if (this.current === "open") {
      now ??= Date.now();
      const halfOpenAt = this.openedAt + this.halfOpenAfterMs;
      if (now < halfOpenAt) {
        throw new ConnectError(
          `circuit breaker for ${this.service} is open; it half-opens in ${halfOpenAt - now} ms (at ${new Date(halfOpenAt).toISOString()})`,
          Code.Unavailable,
        );
      }
      this.set("half-open");
    }
    if (this.current === "half-open") {
      if (this.probing) throw new ConnectError(`circuit breaker for ${this.service} is half-open and its probe call is in flight`, Code.Unavailable);
      this.probing = true;
      return once((outcome) => this.probeDone(outcome));
    }
    return this.closedCompletion;
  }

  private closedDone(outcome: CallOutcome): void {
    // A call admitted before the circuit opened says nothing about the probe: ignore it.
    if (this.current !== "closed" || outcome === "neutral") return;
    if (outcome === "success") this.breaker.success(CircuitState.Closed);
    else if (this.breaker.failure(CircuitState.Closed)) this.open();
  }

  private probeDone(outcome: CallOutcome): void {
    this.probing = false;
    if (this.current !== "half-open" || outcome === "neutral") return; // the next call probes instead
    if (outcome === "success") {
      this.breaker.success(CircuitState.HalfOpen);
      this.set("closed");
    } else {
      this.breaker.failure(CircuitState.HalfOpen);
      this.open();
    }
  }

  private open(): void {
    this.openedAt = Date.now();
    this.set("open");
  }

  private set(state: BreakerState): void {
    if (this.current === state) return;
    this.current = state;
    this.opts.onStateChange?.(state);
  }
}

function once<T>(fn: (v: T) => void): (v: T) => void {
  let called = false;
  return (v) => {
    if (called) return;
    called = true;
    fn(v);
  };
}
