import { EventEmitter } from "node:events";
import { Code, ConnectError } from "@connectrpc/connect";
import { ExponentialBackoff, IBackoff } from "cockatiel";
import type { Etcd3, Lease } from "etcd3";
import { SingleFlightLoop } from "../etcd/single-flight.js";
import { Pause } from "../policy/pause.js";
import { InstanceInfo, instanceKey, parseInstance } from "./instance.js";

/** Options for {@link Registration}. */
export interface RegistrationOptions {
  /**
   * Lease TTL in seconds. After a kill -9 the key disappears within about this long
   * (RELIABILITY.md R1: gone within TTL + 1 s).
   */
  ttlSeconds?: number;
  /** First delay between failed registration attempts, in ms. */
  retryInitialMs?: number;
  /** Largest delay between failed registration attempts, in ms. */
  retryMaxMs?: number;
}

// 5 s: a kill -9 disappears within ~5 s (measured 3.7–4.6 s, TOOLCHAIN.md trap 5), well above
// etcd's 2 s minimum TTL, and etcd3's keepalive every TTL/3 (~1.7 s) survives one lost round.
const DEFAULT_TTL_SECONDS = 5;
// 100 ms: a lost lease is usually replaced on the first retry once etcd answers again.
const DEFAULT_RETRY_INITIAL_MS = 100;
// 5 s caps the extra time a registration stays missing after a long etcd outage ends.
const DEFAULT_RETRY_MAX_MS = 5_000;

/** Events of a {@link Registration}. */
export interface RegistrationEvents {
  /** The key was written under a fresh lease; `registrations` is 1 at first, then counts re-registrations. */
  registered: [registrations: number];
  /** The lease was lost (expired, revoked, or etcd unreachable past it); re-registration starts. */
  lost: [error: Error];
}

/**
 * Keeps one instance registered at `/meshwork/services/<service>/<instance>` under a lease with
 * keepalive, starting on construction. When the lease is lost it re-registers, single-flight
 * (never two attempts at once) with jittered exponential backoff and no retry cap, for as long
 * as it takes. `deregister()` revokes the lease (the key disappears at once); `close()` only
 * stops (the key expires after the TTL).
 */
export class Registration extends EventEmitter<RegistrationEvents> {
  /** The etcd key this instance is registered under. */
  readonly key: string;
  readonly info: InstanceInfo;
  private readonly ttlSeconds: number;
  private readonly value: string;
  private readonly backoffFactory: ExponentialBackoff<unknown>;
  private lease: Lease | undefined;
  private registered = false;
  private lastAckAt = 0;
  private count = 0;
  private closed = false;
  private readonly repair = new SingleFlightLoop(() => this.step(), () => this.closed);
  private backoff: IBackoff<unknown>;
  private readonly pause = new Pause();
  private readonly firstRegistration: Promise<void>;
  private resolveFirst!: () => void;
  private rejectFirst!: (e: Error) => void;

  constructor(
    private readonly client: Etcd3,
    info: InstanceInfo,
    opts: RegistrationOptions = {},
  ) {
    super();
    this.info = parseInstance(info);
    this.key = instanceKey(this.info.service, this.info.instance);
    this.value = JSON.stringify(this.info);
    this.ttlSeconds = opts.ttlSeconds ?? DEFAULT_TTL_SECONDS;
    if (!Number.isInteger(this.ttlSeconds) || this.ttlSeconds < 2) {
      throw new ConnectError(`ttlSeconds ${this.ttlSeconds} must be an integer of at least 2 (etcd's minimum lease TTL)`, Code.InvalidArgument);
    }
    this.backoffFactory = new ExponentialBackoff({
      initialDelay: opts.retryInitialMs ?? DEFAULT_RETRY_INITIAL_MS,
      maxDelay: opts.retryMaxMs ?? DEFAULT_RETRY_MAX_MS,
    });
    this.backoff = this.backoffFactory.next();
    this.firstRegistration = new Promise<void>((resolve, reject) => {
      this.resolveFirst = resolve;
      this.rejectFirst = reject;
    });
    // Callers that never await whenRegistered() must not see an unhandled rejection on close.
    this.firstRegistration.catch(() => undefined);
    this.kick();
  }

  /**
   * True while the key is held under a live lease: registered and acknowledged by etcd within
   * the last TTL (after that etcd has expired the lease even if etcd3 has not said so yet).
   */
  isRegistered(): boolean {
    return this.registered && Date.now() - this.lastAckAt < this.ttlSeconds * 1000;
  }

  /** Successful registrations so far: 1 after the first, more after each re-registration. */
  get registrations(): number {
    return this.count;
  }

  /** Resolves at the first successful registration; rejects if closed before that. */
  whenRegistered(): Promise<void> {
    return this.firstRegistration;
  }

  /**
   * Stops re-registration and revokes the lease, so the key disappears immediately (graceful
   * drain). Throws `ConnectError` `Code.Unavailable` when etcd cannot be reached; the key then
   * expires after the TTL.
   */
  async deregister(): Promise<void> {
    await this.stop();
    const lease = this.lease;
    this.lease = undefined;
    if (!lease) return;
    try {
      await lease.revoke();
    } catch (e) {
      throw new ConnectError(`revoking the lease of ${this.key} failed: ${(e as Error).message}`, Code.Unavailable, undefined, undefined, e);
    }
  }

  /** Stops keepalive and re-registration without revoking: the key expires after the TTL. */
  async close(): Promise<void> {
    await this.stop();
    this.lease?.release();
    this.lease = undefined;
  }

  private async stop(): Promise<void> {
    if (!this.closed) {
      this.closed = true;
      this.rejectFirst(new ConnectError(`registration of ${this.key} closed before it registered`, Code.Canceled));
      this.pause.wake();
    }
    // An attempt in flight finishes (bounded by the client's call deadline) before the lease is
    // revoked or released, so no lease outlives close().
    await this.repair.settled();
    this.registered = false;
  }

  /** Requests a (re-)registration; single-flight. */
  private kick(): void {
    this.repair.request();
  }

  /** One registration attempt; after a failure, waits the backoff before the loop repeats it. */
  private async step(): Promise<void> {
    try {
      await this.attempt();
      this.backoff = this.backoffFactory.next();
    } catch (e) {
      await this.pause.sleep(this.backoff.duration);
      this.backoff = this.backoff.next(undefined);
      throw e;
    }
  }

  private async attempt(): Promise<void> {
    const previous = this.lease;
    const lease = this.client.lease(this.ttlSeconds);
    this.lease = lease;
    lease.on("lost", (err) => this.onLost(lease, err));
    lease.on("keepaliveSucceeded", () => {
      if (lease === this.lease) this.lastAckAt = Date.now();
    });
    try {
      await lease.put(this.key).value(this.value).exec();
      // The lease may have been lost while the put was in flight.
      if (lease.revoked()) throw new Error(`lease lost while registering ${this.key}`);
    } catch (e) {
      // Revoked in the background: if the put did land, the next attempt rewrites the key anyway.
      lease.revoke().catch(() => undefined);
      throw e;
    }
    if (this.closed) return; // stop() releases or revokes this lease.
    this.registered = true;
    this.lastAckAt = Date.now();
    this.count += 1;
    // The key now belongs to the new lease (a put re-attaches it), so revoking the old one only
    // frees it early; etcd re-arms leases on restart, so it could otherwise linger for a TTL.
    previous?.revoke().catch(() => undefined);
    if (this.count === 1) this.resolveFirst();
    this.emit("registered", this.count);
  }

  private onLost(lease: Lease, err: Error): void {
    if (lease !== this.lease || this.closed) return; // an old lease, already replaced
    if (this.registered) {
      this.registered = false;
      this.emit("lost", err);
    }
    this.kick();
  }
}
