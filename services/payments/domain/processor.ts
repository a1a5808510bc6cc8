import type { DeclineReason, Money } from "./model.js";

/** What the card processor answered. */
export type ProcessorResult = { outcome: "approved" } | { outcome: "declined"; reason: Exclude<DeclineReason, "PROCESSING_ERROR"> } | { outcome: "failed" };

/** A card processor: places holds. */
export interface CardProcessor {
  /** Evaluates an authorization; `signal` aborts a slow one (the caller's deadline). */
  authorize(cardNumber: string, amount: Money, signal?: AbortSignal): Promise<ProcessorResult>;
}

/**
 * The test cards of payments.proto (AuthorizeRequest.card_number), plus SLOW, which is approved
 * after a delay so callers can exercise deadlines. Any other Luhn-valid number is approved.
 */
export const TEST_CARDS = {
  APPROVED: "4242424242424242",
  DECLINED_GENERIC: "4000000000000002",
  DECLINED_INSUFFICIENT_FUNDS: "4000000000009995",
  DECLINED_EXPIRED_CARD: "4000000000000069",
  PROCESSING_ERROR: "4000000000000119",
  /** Approved after {@link SimulatedProcessorOptions.slowDelayMs}; not (yet) documented in the proto. */
  SLOW: "4000000000000077",
} as const;

const DECLINES: Readonly<Record<string, Exclude<DeclineReason, "PROCESSING_ERROR">>> = {
  [TEST_CARDS.DECLINED_GENERIC]: "GENERIC",
  [TEST_CARDS.DECLINED_INSUFFICIENT_FUNDS]: "INSUFFICIENT_FUNDS",
  [TEST_CARDS.DECLINED_EXPIRED_CARD]: "EXPIRED_CARD",
};

/** Options of {@link SimulatedProcessor}. */
export interface SimulatedProcessorOptions {
  /** How long the SLOW card takes. */
  slowDelayMs: number;
}

/** The simulated processor: deterministic by card number, never touches a network. */
export class SimulatedProcessor implements CardProcessor {
  constructor(private readonly opts: SimulatedProcessorOptions) {}

  async authorize(cardNumber: string, _amount: Money, signal?: AbortSignal): Promise<ProcessorResult> {
    if (cardNumber === TEST_CARDS.SLOW) await sleep(this.opts.slowDelayMs, signal);
    if (cardNumber === TEST_CARDS.PROCESSING_ERROR) return { outcome: "failed" };
    const reason = DECLINES[cardNumber];
    return reason ? { outcome: "declined", reason } : { outcome: "approved" };
  }
}

/** True when `digits` passes the Luhn checksum. */
export function luhnValid(digits: string): boolean {
  let sum = 0;
  for (let i = digits.length - 1, double = false; i >= 0; i--, double = !double) {
    let d = digits.charCodeAt(i) - 48;
    if (double) d = d * 2 > 9 ? d * 2 - 9 : d * 2;
    sum += d;
  }
  return sum % 10 === 0;
}

function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(signal.reason);
    const timer = setTimeout(() => {
      signal?.removeEventListener("abort", onAbort);
      resolve();
    }, ms);
    const onAbort = () => {
      clearTimeout(timer);
      reject(signal!.reason);
    };
    signal?.addEventListener("abort", onAbort, { once: true });
  });
}
