import { AsyncResource } from "node:async_hooks";
import { backoffDelay, type BackoffOptions } from "../../../mesh/events/backoff.js";
import type { OrderChanges } from "./changes.js";
import {
  orderTotal,
  paymentKey,
  reservationIdOf,
  type Compensation,
  type Failure,
  type FailureReason,
  type ForwardStep,
  type Order,
  type OrderItem,
  type SagaState,
} from "./order.js";
import { RemoteError, type CheckoutPorts, type ProductInfo } from "./ports.js";
import type { OrderChange, OrderRepository } from "./repository.js";

/** Minimal logger (pino-compatible). */
export interface SagaLogger {
  info(obj: object, msg: string): void;
  warn(obj: object, msg: string): void;
  error(obj: object, msg: string): void;
}

/** Timing of {@link CheckoutSaga}; every field has a default. */
export interface SagaTiming {
  /** Saga lease. Default 5 s: a killed orchestrator's sagas are resumed ~5 s later, as long as the registry needs to forget it. */
  leaseMs: number;
  /** How often unowned sagas and unsettled payments are looked for. Default 1 s: one indexed query a second. */
  sweepIntervalMs: number;
  /** Timeout of each catalog call. Default 2 s, GetProduct's own timeout in the contract. */
  catalogTimeoutMs: number;
  /** Timeout of each inventory or payments call. Default 5 s, their methods' timeout in the contract. */
  callTimeoutMs: number;
  /** Attempts of a forward step before the saga gives up and compensates. Default 3: rides out a replica restart without holding the customer long. */
  forwardAttempts: number;
  /** Backoff between forward attempts. Default 100 ms doubling to 1 s: all attempts fit one CreateOrder deadline when the calls fail fast. */
  forwardBackoff: BackoffOptions;
  /** Backoff between compensation attempts, which never stop. Default 100 ms doubling to 5 s: a long outage costs one call per ~5 s per saga. */
  compensationBackoff: BackoffOptions;
}

const DEFAULT_TIMING: SagaTiming = {
  leaseMs: 5_000,
  sweepIntervalMs: 1_000,
  catalogTimeoutMs: 2_000,
  callTimeoutMs: 5_000,
  forwardAttempts: 3,
  forwardBackoff: { initialMs: 100, maxMs: 1_000 },
  compensationBackoff: { initialMs: 100, maxMs: 5_000 },
};

// The statuses a finished saga leaves; an order deleted before it was placed reports nothing.
const OUTCOMES = new Set<string>(["CONFIRMED", "FAILED", "CANCELLED"] satisfies SagaOutcome[]);

// Unfinished sagas taken over per sweep: bounds the burst after a restart under load.
const SWEEP_BATCH = 100;

/** Thrown inside a drive when the lease was lost or the saga runner stops; ends the drive quietly. */
class DriveInterrupted extends Error {}

type StepResult = { ok: true } | { ok: false; failure: Failure };

/** How a saga ended: the order's final status. */
export type SagaOutcome = "CONFIRMED" | "FAILED" | "CANCELLED";

/** Options for {@link CheckoutSaga}. */
export interface CheckoutSagaOptions {
  repo: OrderRepository;
  ports: CheckoutPorts;
  changes: OrderChanges;
  /** Unique per process: the lease owner id. */
  owner: string;
  logger: SagaLogger;
  timing?: Partial<SagaTiming>;
  /**
   * Runs one drive of a claimed order; default: runs it as it is. Telemetry passes a scope that
   * continues the trace stored with the order (`order.traceparent`), so the drive's remote calls,
   * events and log lines belong to the CreateOrder request even though the drive is detached.
   */
  driveScope?: (order: Order, drive: () => Promise<void>) => Promise<void>;
  /** Called once per saga this process finishes (metrics). */
  onOutcome?: (outcome: SagaOutcome, order: Order) => void;
}

/**
 * The persisted checkout saga: validate (catalog) → reserve (inventory) → authorize (payments) →
 * commit → capture → CONFIRMED. Before each remote call the step's intent is stored, after it the
 * outcome; a failure switches the saga to compensating, which settles the payment (void or
 * refund) and then releases the stock — the reverse order — each retried until it succeeds.
 *
 * Drives run detached from the request that started them (their own async context, explicit
 * per-call timeouts), so a saga outlives CreateOrder's deadline. {@link start} resumes every
 * unfinished saga whose lease is free, at once and then periodically.
 *
 * The card number is only ever in memory ({@link rememberCard}). A saga resumed by another process
 * before its authorization is known cannot authorize again and fails with PAYMENT_FAILED; if the
 * lost Authorize did go through, the PaymentAuthorized event links the payment to the order
 * ({@link OrderRepository.linkPayment}) and the sweep voids it.
 */
export class CheckoutSaga {
  readonly owner: string;
  private readonly repo: OrderRepository;
  private readonly ports: CheckoutPorts;
  private readonly changes: OrderChanges;
  private readonly log: SagaLogger;
  private readonly t: SagaTiming;
  private readonly driving = new Map<string, Promise<void>>();
  private readonly settling = new Map<string, Promise<void>>();
  private readonly cards = new Map<string, string>();
  private readonly stopper = new AbortController();
  private timers: NodeJS.Timeout[] = [];
  private sweeping: Promise<void> | undefined;
  private readonly detachedDrive: (id: string) => Promise<void>;
  private readonly detachedSettle: (orderId: string, paymentId: string) => Promise<void>;
  private readonly driveScope: (order: Order, drive: () => Promise<void>) => Promise<void>;
  private readonly onOutcome: (outcome: SagaOutcome, order: Order) => void;

  constructor(opts: CheckoutSagaOptions) {
    this.repo = opts.repo;
    this.ports = opts.ports;
    this.changes = opts.changes;
    this.owner = opts.owner;
    this.log = opts.logger;
    this.t = { ...DEFAULT_TIMING, ...opts.timing };
    this.driveScope = opts.driveScope ?? ((_order, drive) => drive());
    this.onOutcome = opts.onOutcome ?? (() => undefined);
    // Bound to the async context of construction (no request): drives started from a handler do
    // not inherit its deadline or cancellation.
    this.detachedDrive = AsyncResource.bind((id: string) => this.runDrive(id));
    this.detachedSettle = AsyncResource.bind((orderId: string, paymentId: string) => this.runSettleOrphan(orderId, paymentId));
  }

  /** Starts resuming unfinished sagas (now and every sweep interval) and renewing held leases. */
  start(): void {
    if (this.timers.length > 0 || this.stopper.signal.aborted) return;
    const sweep = () => {
      this.sweeping ??= this.sweep().finally(() => (this.sweeping = undefined));
    };
    sweep();
    this.timers.push(setInterval(sweep, this.t.sweepIntervalMs));
    // Renew at a third of the lease, so one missed renewal does not lose it.
    this.timers.push(setInterval(() => void this.renew(), this.t.leaseMs / 3));
    for (const timer of this.timers) timer.unref();
  }

  /** Stops at the next step boundary of every drive, gives their leases back, and resolves when they ended. */
  async stop(): Promise<void> {
    this.stopper.abort();
    for (const timer of this.timers) clearInterval(timer);
    this.timers = [];
    await this.sweeping;
    await Promise.allSettled([...this.driving.values(), ...this.settling.values()]);
  }

  /** Keeps the card of an order in memory until its authorization is known. */
  rememberCard(orderId: string, cardNumber: string): void {
    this.cards.set(orderId, cardNumber);
  }

  forgetCard(orderId: string): void {
    this.cards.delete(orderId);
  }

  /** The lease expiry a new order gets when inserted by this process. */
  leaseUntil(now = Date.now()): number {
    return now + this.t.leaseMs;
  }

  /** Drives the order's saga in the background unless this process already does; resolves when that drive ends. */
  drive(orderId: string): Promise<void> {
    const running = this.driving.get(orderId);
    if (running) return running;
    if (this.stopper.signal.aborted) return Promise.resolve();
    const p = this.detachedDrive(orderId).finally(() => this.driving.delete(orderId));
    this.driving.set(orderId, p);
    return p;
  }

  private async runDrive(id: string): Promise<void> {
    let order: Order | undefined;
    try {
      const claimed = await this.repo.claim(id, this.owner, this.leaseUntil(), Date.now());
      if (!claimed) return; // finished, or driven by another live process
      order = claimed;
      await this.driveScope(claimed, async () => {
        while (order && order.saga.phase !== "finished") {
          this.checkRunning();
          order = order.saga.phase === "forward" ? await this.forward(order) : await this.compensate(order);
        }
        if (order?.saga.phase === "finished" && OUTCOMES.has(order.status)) {
          this.log.info({ orderId: order.id, status: order.status }, "checkout saga finished");
          this.onOutcome(order.status as SagaOutcome, order);
        }
      });
    } catch (err) {
      if (!(err instanceof DriveInterrupted)) this.log.error({ err, orderId: id }, "saga drive failed; the sweep resumes it");
    } finally {
      if (order?.saga.phase !== "finished") {
        // Hand over at once instead of after the lease expires.
        await this.repo.releaseLease(id, this.owner).catch((err) => this.log.warn({ err, orderId: id }, "could not release saga lease"));
      }
      // The card is needed only by this drive; a later drive (another request, a restart) has no use for it.
      this.cards.delete(id);
    }
  }

  // ---- forward -------------------------------------------------------------------------------

  private async forward(order: Order): Promise<Order | undefined> {
    const next = nextStep(order.saga);
    if (next !== "validate") {
      const cancel = await this.repo.cancelRequest(order.id);
      if (cancel !== undefined) {
        return this.write(order, {
          saga: { ...order.saga, phase: "compensating", outcome: { status: "CANCELLED", reason: cancel, previousStatus: "PENDING" } },
        });
      }
    }
    switch (next) {
      case "validate":
        return this.validate(order);
      case "reserve":
        return this.step(order, "reserve", () => this.reserve(order), { reservationId: reservationIdOf(order.id) });
      case "authorize":
        return this.authorize(order);
      case "commit":
        return this.step(order, "commit", () => this.commit(order));
      case "capture":
        return this.step(order, "capture", () => this.capture(order));
      case undefined:
        this.cards.delete(order.id);
        return this.write(order, { saga: { ...order.saga, phase: "finished" }, status: "CONFIRMED", events: ["confirmed"] });
    }
  }

  /** Records the intent, runs `call`, then records done (moving on) or the failure (compensating). */
  private async step(order: Order, step: ForwardStep, call: () => Promise<StepResult>, onDone: Partial<OrderChange> = {}): Promise<Order | undefined> {
    const current = order.saga.steps[step] === "intent" ? order : await this.write(order, { saga: mark(order.saga, step, "intent") });
    const result = await call();
    if (result.ok) return this.write(current, { ...onDone, saga: mark(current.saga, step, "done") });
    return this.fail(current, step, result.failure);
  }

  private fail(order: Order, step: ForwardStep, failure: Failure, extra: Partial<OrderChange> = {}): Promise<Order | undefined> {
    this.log.info({ orderId: order.id, step, reason: failure.reason, retryable: failure.retryable }, "checkout failed; compensating");
    return this.write(order, { ...extra, saga: { ...mark(order.saga, step, "done"), phase: "compensating", outcome: { status: "FAILED", failure } } });
  }

  private async validate(order: Order): Promise<Order | undefined> {
    const current = order.saga.steps.validate === "intent" ? order : await this.write(order, { saga: mark(order.saga, "validate", "intent") });
    const looked = await Promise.all(
      current.items.map((it) => this.attempt(`GetProduct ${it.productId}`, () => this.ports.getProduct(it.productId, this.t.catalogTimeoutMs))),
    );
    const unavailable = looked.find((r): r is { error: RemoteError } => "error" in r);
    if (unavailable) {
      // Nothing was placed, held or published: forget the order so a retry with the same key starts over.
      this.log.warn({ orderId: current.id, err: unavailable.error }, "catalog unavailable; checkout abandoned before it started");
      if (await this.repo.deleteUnplaced(current.id, this.owner)) this.changes.notify(current.id);
      return undefined;
    }
    const products = looked.map((r) => (r as { value: ProductInfo | undefined }).value);
    const items: OrderItem[] = current.items.map((it, i) => ({ ...it, name: products[i]?.name ?? "", unitPriceMinor: products[i]?.priceMinor ?? it.expectedUnitPriceMinor ?? 0 }));
    const change: Partial<OrderChange> = { items, totalMinor: orderTotal(items), events: ["placed"] };
    const failure = priceCheck(current, products);
    if (failure) return this.fail(current, "validate", failure, change);
    return this.write(current, { ...change, saga: mark(current.saga, "validate", "done") });
  }

  private async reserve(order: Order): Promise<StepResult> {
    const r = await this.attempt("Reserve", () =>
      this.ports.reserve(
        { reservationId: reservationIdOf(order.id), orderId: order.id, items: order.items.map((it) => ({ productId: it.productId, quantity: it.quantity })) },
        this.t.callTimeoutMs,
      ),
    );
    if (!("error" in r)) return { ok: true };
    const e = r.error;
    if (e.reason === "ERROR_REASON_INSUFFICIENT_STOCK") {
      return { ok: false, failure: failure("OUT_OF_STOCK", false, `not enough stock: ${e.message}`, pick(e.metadata, ["product_id", "available"])) };
    }
    if (e.reason === "ERROR_REASON_PRODUCT_NOT_FOUND") {
      return { ok: false, failure: failure("OUT_OF_STOCK", false, `inventory does not stock a product: ${e.message}`, { ...pick(e.metadata, ["product_id"]), available: "0" }) };
    }
    return { ok: false, failure: remoteFailure("OUT_OF_STOCK", "inventory", e) };
  }

  private async authorize(order: Order): Promise<Order | undefined> {
    const card = this.cards.get(order.id);
    if (card === undefined) {
      // Another process started this checkout and died; only the customer has the card number.
      return this.fail(
        order,
        "authorize",
        failure("PAYMENT_FAILED", false, "checkout was interrupted before the payment was known; retry with a new idempotency_key", { cause: "interrupted" }),
      );
    }
    const current = order.saga.steps.authorize === "intent" ? order : await this.write(order, { saga: mark(order.saga, "authorize", "intent") });
    const r = await this.attempt("Authorize", () =>
      this.ports.authorize(
        {
          idempotencyKey: paymentKey(current.id, "authorize"),
          orderId: current.id,
          customerId: current.customerId,
          currency: current.currency,
          amountMinor: current.totalMinor,
          cardNumber: card,
        },
        this.t.callTimeoutMs,
      ),
    );
    if ("error" in r) return this.fail(current, "authorize", remoteFailure("PAYMENT_FAILED", "payments", r.error));
    this.cards.delete(current.id);
    const payment = r.value;
    const linked: Partial<OrderChange> = { paymentId: payment.id, linkPayment: payment.id };
    if (payment.status === "AUTHORIZED") return this.write(current, { ...linked, saga: mark(current.saga, "authorize", "done") });
    const meta: Record<string, string> = payment.declineReason ? { decline_reason: payment.declineReason } : {};
    const f =
      payment.status === "DECLINED"
        ? failure("PAYMENT_DECLINED", false, `the card was declined (${payment.declineReason || "no reason given"})`, meta)
        : failure("PAYMENT_FAILED", false, `the payment processor could not process the card (status ${payment.status})`, meta);
    return this.fail(current, "authorize", f, linked);
  }

  private async commit(order: Order): Promise<StepResult> {
    const r = await this.attempt("CommitReservation", () => this.ports.commitReservation(reservationIdOf(order.id), this.t.callTimeoutMs));
    if (!("error" in r)) return { ok: true };
    return { ok: false, failure: remoteFailure("OUT_OF_STOCK", "inventory", r.error) };
  }

  private async capture(order: Order): Promise<StepResult> {
    const r = await this.attempt("Capture", () => this.ports.capture(paymentKey(order.id, "capture"), order.paymentId, this.t.callTimeoutMs));
    if ("error" in r) return { ok: false, failure: remoteFailure("PAYMENT_FAILED", "payments", r.error) };
    if (r.value.status !== "CAPTURED") {
      return { ok: false, failure: failure("PAYMENT_FAILED", false, `capture left the payment ${r.value.status}`, { payment_status: r.value.status }) };
    }
    return { ok: true };
  }

  /** One forward call with a few retries of transient errors; the value, or the last error. */
  private async attempt<T>(what: string, call: () => Promise<T>): Promise<{ value: T } | { error: RemoteError }> {
    for (let attempt = 1; ; attempt++) {
      this.checkRunning();
      try {
        return { value: await call() };
      } catch (err) {
        const e = asRemote(err);
        if (!e.transient || attempt >= this.t.forwardAttempts) return { error: e };
        this.log.warn({ err: e, what, attempt }, "checkout call failed; retrying");
        await this.sleep(backoffDelay(attempt, this.t.forwardBackoff));
      }
    }
  }

  // ---- compensation --------------------------------------------------------------------------

  private async compensate(order: Order): Promise<Order | undefined> {
    const outcome = order.saga.outcome;
    if (!outcome) throw new Error(`order ${order.id} is compensating without an outcome`);
    const next = nextCompensation(order.saga);
    if (next !== undefined) {
      const current = order.saga.steps[next] === "intent" ? order : await this.write(order, { saga: mark(order.saga, next, "intent") });
        if (next === "settle_payment") await this.settleAll(current);
      else await this.releaseStock(current, outcome.status === "CANCELLED" ? `order cancelled: ${outcome.reason}` : `checkout failed: ${outcome.failure.reason}`);
      return this.write(current, { saga: mark(current.saga, next, "done") });
    }
    const finished: SagaState = { ...order.saga, phase: "finished" };
    if (outcome.status === "FAILED") {
      return this.write(order, { saga: finished, status: "FAILED", failure: outcome.failure, events: ["failed"] });
    }
    return this.write(order, { saga: finished, status: "CANCELLED", cancelReason: outcome.reason, events: ["cancelled"], previousStatus: outcome.previousStatus });
  }

  /** Settles every payment linked to the order; the one it keeps is never linked to a failing or cancelled order's settle. */
  private async settleAll(order: Order): Promise<void> {
    const reason = order.saga.outcome?.status === "CANCELLED" ? "order cancelled" : "checkout failed";
    for (const paymentId of await this.repo.unsettledPayments(order.id)) {
      await this.settlePayment(order.id, paymentId, reason);
      await this.repo.markPaymentSettled(order.id, paymentId);
    }
  }

  /** Makes sure the payment holds no money: voids an authorization, refunds a capture; retried until done. */
  private settlePayment(orderId: string, paymentId: string, reason: string): Promise<void> {
    return this.untilDone(`settle payment ${paymentId} of ${orderId}`, async () => {
      const p = await this.ports.getPayment(paymentId, this.t.callTimeoutMs);
      if (!p) {
        this.log.error({ orderId, paymentId }, "payments does not know a payment linked to the order; nothing to settle");
        return;
      }
      if (p.status === "AUTHORIZED") await this.ports.void(paymentKey(orderId, "void", paymentId), paymentId, this.t.callTimeoutMs);
      else if (p.status === "CAPTURED" || p.status === "PARTIALLY_REFUNDED") {
        await this.ports.refund(paymentKey(orderId, "refund", paymentId), paymentId, reason, this.t.callTimeoutMs);
      }
    });
  }

  private releaseStock(order: Order, reason: string): Promise<void> {
    return this.untilDone(`release reservation of ${order.id}`, async () => {
      await this.ports.releaseReservation(reservationIdOf(order.id), reason, this.t.callTimeoutMs);
    });
  }

  /** Retries `fn` with jittered backoff until it succeeds (logging every failure); only stop() ends it. */
  private async untilDone(what: string, fn: () => Promise<void>): Promise<void> {
    for (let attempt = 1; ; attempt++) {
      this.checkRunning();
      try {
        return await fn();
      } catch (err) {
        const level = asRemote(err).transient ? "warn" : "error";
        this.log[level]({ err, what, attempt }, "compensation failed; retrying");
        await this.sleep(backoffDelay(attempt, this.t.compensationBackoff));
      }
    }
  }

  // ---- background ----------------------------------------------------------------------------

  private async sweep(): Promise<void> {
    try {
      for (const id of await this.repo.findClaimable(Date.now(), SWEEP_BATCH)) void this.drive(id);
      for (const { orderId, paymentId } of await this.repo.findOrphanPayments(SWEEP_BATCH)) {
        const key = `${orderId}\0${paymentId}`;
        if (this.settling.has(key) || this.stopper.signal.aborted) continue;
        this.settling.set(key, this.detachedSettle(orderId, paymentId).finally(() => this.settling.delete(key)));
      }
    } catch (err) {
      this.log.warn({ err }, "saga sweep failed");
    }
  }

  private async runSettleOrphan(orderId: string, paymentId: string): Promise<void> {
    try {
      this.log.warn({ orderId, paymentId }, "settling a payment its order does not keep (late authorization)");
      await this.settlePayment(orderId, paymentId, "order not completed");
      await this.repo.markPaymentSettled(orderId, paymentId);
    } catch (err) {
      if (!(err instanceof DriveInterrupted)) this.log.error({ err, orderId, paymentId }, "settling an orphan payment failed; the sweep retries");
    }
  }

  private async renew(): Promise<void> {
    if (this.driving.size === 0) return;
    await this.repo.renewLeases(this.owner, [...this.driving.keys()], this.leaseUntil()).catch((err) => this.log.warn({ err }, "saga lease renewal failed"));
  }

  /** Writes a change fenced by our lease; stops the drive when the lease is gone. */
  private async write(order: Order, change: OrderChange): Promise<Order> {
    const updated = await this.repo.update(order.id, this.owner, change);
    if (!updated) {
      this.log.warn({ orderId: order.id }, "saga lease lost; another process continues this checkout");
      throw new DriveInterrupted();
    }
    this.changes.notify(order.id);
    return updated;
  }

  private checkRunning(): void {
    if (this.stopper.signal.aborted) throw new DriveInterrupted();
  }

  private sleep(ms: number): Promise<void> {
    const signal = this.stopper.signal;
    return new Promise((resolve, reject) => {
      if (signal.aborted) return reject(new DriveInterrupted());
      const onAbort = () => {
        clearTimeout(timer);
        reject(new DriveInterrupted());
      };
      const timer = setTimeout(() => {
        signal.removeEventListener("abort", onAbort);
        resolve();
      }, ms);
      signal.addEventListener("abort", onAbort, { once: true });
    });
  }
}

function mark(saga: SagaState, step: ForwardStep | Compensation, value: "intent" | "done"): SagaState {
  return { ...saga, steps: { ...saga.steps, [step]: value } };
}

function nextStep(saga: SagaState): ForwardStep | undefined {
  return (["validate", "reserve", "authorize", "commit", "capture"] as const).find((s) => saga.steps[s] !== "done");
}

/** The next compensation to run: settle the payment if one was attempted, then release the stock if any was reserved. */
function nextCompensation(saga: SagaState): Compensation | undefined {
  if (saga.steps.authorize !== undefined && saga.steps.settle_payment !== "done") return "settle_payment";
  if (saga.steps.reserve !== undefined && saga.steps.release_stock !== "done") return "release_stock";
  return undefined;
}

function failure(reason: FailureReason, retryable: boolean, message: string, metadata: Record<string, string> = {}): Failure {
  return { reason, retryable, message, metadata };
}

/** A remote error as the checkout failure of the step that called it. */
function remoteFailure(reason: FailureReason, service: string, e: RemoteError): Failure {
  const meta: Record<string, string> = { cause: `${service}: ${e.code}` };
  if (e.reason) meta.remote_reason = e.reason;
  return failure(reason, e.transient, `${service} failed: ${e.message}`, meta);
}

function pick(meta: Record<string, string>, keys: string[]): Record<string, string> {
  return Object.fromEntries(keys.filter((k) => meta[k] !== undefined).map((k) => [k, meta[k]]));
}

/** The first item that cannot be sold as requested, as a failure; undefined when all can. */
function priceCheck(order: Order, products: (ProductInfo | undefined)[]): Failure | undefined {
  for (let i = 0; i < order.items.length; i++) {
    const item = order.items[i];
    const p = products[i];
    const meta = { product_id: item.productId };
    if (!p) return failure("PRODUCT_NOT_FOUND", false, `product ${item.productId} does not exist`, meta);
    if (!p.active) return failure("PRODUCT_INACTIVE", false, `product ${item.productId} is no longer sold`, meta);
    if (p.currency !== order.currency) {
      return failure("CURRENCY_MISMATCH", false, `product ${item.productId} is priced in ${p.currency}, not ${order.currency}`, meta);
    }
    if (item.expectedUnitPriceMinor !== null && item.expectedUnitPriceMinor !== p.priceMinor) {
      return failure("PRICE_CHANGED", false, `product ${item.productId} now costs ${p.priceMinor}, not ${item.expectedUnitPriceMinor}`, {
        ...meta,
        current_amount_minor: String(p.priceMinor),
      });
    }
  }
  return undefined;
}

function asRemote(err: unknown): RemoteError {
  if (err instanceof RemoteError) return err;
  if (err instanceof DriveInterrupted) throw err;
  return new RemoteError(err instanceof Error ? err.message : String(err), "Unknown", true, "", {});
}
