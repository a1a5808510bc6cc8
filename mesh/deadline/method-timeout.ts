import { getOption, type DescMethod } from "@bufbuild/protobuf";
import { method as methodSettings } from "../../gen/meshwork/v1/options_pb.js";

/**
 * Deadline of a method whose contract sets no meshwork `timeout`: 10 s, CreateOrder's (the longest
 * in the shop's contracts), so an unannotated method is never cut shorter than a declared one.
 */
export const DEFAULT_METHOD_TIMEOUT_MS = 10_000;

/** Per-service deadline configuration, overriding the contracts. */
export interface MethodTimeoutOptions {
  /** For methods whose contract has no meshwork timeout. Default {@link DEFAULT_METHOD_TIMEOUT_MS}. */
  defaultMs?: number;
  /** By proto method name ("GetProduct"): the method's maximum in ms; 0 = no limit. */
  methods?: Record<string, number>;
}

/**
 * The longest deadline `method` may run with, in ms, or undefined for "no limit". Order: the
 * per-service override, then the contract's `(meshwork.v1.method).timeout` (zero = no limit, used
 * by long-lived streams), then `defaultMs`.
 */
export function methodTimeoutMs(method: DescMethod, opts: MethodTimeoutOptions = {}): number | undefined {
  const override = opts.methods?.[method.name];
  if (override !== undefined) return override > 0 ? override : undefined;
  const t = contractTimeoutMs(method);
  if (t === null) return opts.defaultMs ?? DEFAULT_METHOD_TIMEOUT_MS;
  return t > 0 ? t : undefined;
}

// Decoding an option from the descriptor costs microseconds; every call asks, so decode once.
const contractTimeouts = new WeakMap<DescMethod, number | null>();

/** The contract's timeout of `method` in ms (0 = no limit), or null when the contract sets none. */
function contractTimeoutMs(method: DescMethod): number | null {
  let ms = contractTimeouts.get(method);
  if (ms === undefined) {
    const t = getOption(method, methodSettings).timeout;
    ms = t === undefined ? null : Number(t.seconds) * 1000 + t.nanos / 1e6;
    contractTimeouts.set(method, ms);
  }
  return ms;
}

/**
 * `AdapterOptions.timeoutFor` for a server: a caller's deadline is accepted up to the method's
 * maximum ({@link methodTimeoutMs}); a call without one gets that maximum (gRPC sets no deadline by
 * default, so the server sets one rather than letting a call run forever).
 */
export function serverTimeouts(opts: MethodTimeoutOptions = {}): (method: DescMethod, requestedMs: number | undefined) => number | undefined {
  return (method, requested) => {
    const max = methodTimeoutMs(method, opts);
    if (max === undefined) return requested;
    return requested === undefined ? max : Math.min(requested, max);
  };
}
