import { createContextValues, type Transport, type UnaryResponse } from "@connectrpc/connect";
import { TRIED_ENDPOINTS } from "../client/transport.js";
import type { ServiceCallPolicy } from "./call-policy.js";

/**
 * Wraps a transport so that unary methods with `hedgeAfterMs` (only NO_SIDE_EFFECTS ones, see
 * {@link createCallPolicy}) send a second attempt when the first has not answered in time; the
 * first success wins and the other is cancelled. A wrapper rather than part of the transport's
 * attempt loop, which runs attempts one after another. Each of the two is a full call with its own
 * retries; they share the set of tried endpoints, so the hedge goes to another replica. The hedge
 * is sent only while A6's throttle and the retry budget allow a retry.
 */
export function withHedging<T extends Transport>(transport: T, policy: Pick<ServiceCallPolicy, "hedgeAfterMs" | "throttle" | "budget">): T {
  const unary: Transport["unary"] = (method, signal, timeoutMs, header, input, contextValues) => {
    const after = policy.hedgeAfterMs(method);
    if (after === undefined) return transport.unary(method, signal, timeoutMs, header, input, contextValues);
    type Res = Awaited<ReturnType<typeof transport.unary<typeof method.input, typeof method.output>>>;
    const values = contextValues ?? createContextValues();
    if (values.get(TRIED_ENDPOINTS) === undefined) values.set(TRIED_ENDPOINTS, new Set());
    return new Promise<Res>((resolve, reject) => {
      const controllers: AbortController[] = [];
      let running = 0;
      let settled = false;
      let timer: NodeJS.Timeout | undefined;
      const finish = (fn: () => void) => {
        settled = true;
        clearTimeout(timer);
        for (const c of controllers) c.abort();
        fn();
      };
      const launch = () => {
        const c = new AbortController();
        controllers.push(c);
        running++;
        const s = signal ? AbortSignal.any([signal, c.signal]) : c.signal;
        transport.unary(method, s, timeoutMs, header, input, values).then(
          (res: UnaryResponse) => !settled && finish(() => resolve(res as Res)),
          (err: unknown) => {
            running--;
            // Nothing left running: fail (a first attempt that failed before the hedge was due has
            // already had its retries; hedging it would only add load).
            if (!settled && running === 0) finish(() => reject(err));
          },
        );
      };
      launch();
      timer = setTimeout(() => {
        if (settled) return;
        if (policy.throttle && !policy.throttle.allowsRetry()) return;
        if (policy.budget && !policy.budget.tryRetry()) return;
        launch();
      }, after);
    });
  };
  return Object.assign(Object.create(Object.getPrototypeOf(transport) as object) as T, transport, { unary });
}
