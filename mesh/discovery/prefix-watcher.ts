import { EventEmitter } from "node:events";
import { SingleFlightLoop } from "../etcd/single-flight.js";
import { Pause } from "../policy/pause.js";
import { Code, ConnectError } from "@connectrpc/connect";
import { ExponentialBackoff, IBackoff } from "cockatiel";
import type { Etcd3, IKeyValue, IWatchResponse, Watcher } from "etcd3";

/** Events of a {@link PrefixWatcher}. */
export interface PrefixWatcherEvents<T> {
  /** The set of values changed; carries the full current list, sorted by key. */
  change: [values: T[]];
}

// ~100 ms → 5 s between failed range reads: quick after a blip, a trickle during a long outage.
const RESYNC_BACKOFF = new ExponentialBackoff({ initialDelay: 100, maxDelay: 5_000 });
// Bounds close() when the cancel request cannot reach etcd; the watch is dropped either way.
const CANCEL_TIMEOUT_MS = 1_000;

interface Entry<T> {
  raw: string;
  value: T;
}

/**
 * A watch-based cache of every key under an etcd prefix, each value parsed into a `T`: a range
 * read of the prefix, then a watch from the read's revision + 1. Discovery ({@link ServiceWatcher},
 * one service) and the console (the whole registry, {@link watchRegistry}) both use it.
 *
 * - During an etcd outage it keeps serving the last known values.
 * - On reconnect the watch resumes from the last revision this cache applied, so missed events
 *   replay. (etcd3 resumes from its own `start_revision`, but moves it to the response header's
 *   revision + 1 as soon as a watch is created, before the replayed events arrive; a second
 *   disconnect then would skip them. This class pins it back on every disconnect.)
 * - When the watch is cancelled (its revision was compacted) or etcd's revision went backwards
 *   (data reset), it re-reads the prefix and watches again.
 * - Values `parse` rejects (throws) are ignored, their key treated as absent, and counted in
 *   {@link malformed}.
 */
export class PrefixWatcher<T> extends EventEmitter<PrefixWatcherEvents<T>> {
  private readonly entries = new Map<string, Entry<T>>();
  private list: T[] = [];
  /** Highest store revision whose effect on this prefix is reflected in `entries`. */
  private revision = 0n;
  private watcher: Watcher | undefined;
  private malformedCount = 0;
  private readCount = 0;
  private closed = false;
  private readonly resyncs = new SingleFlightLoop(() => this.resyncStep(), () => this.closed);
  private readonly pause = new Pause();
  private backoff: IBackoff<unknown> = RESYNC_BACKOFF.next();
  private readonly firstRead: Promise<void>;
  private resolveFirst!: () => void;
  private rejectFirst!: (e: Error) => void;

  /**
   * Starts reading and watching at once; `ready()` resolves after the first read. `parse` gets the
   * key without the prefix and the value; it throws for a value that is not a valid `T` there.
   */
  constructor(
    private readonly client: Etcd3,
    /** The etcd prefix this watcher reads, e.g. `/meshwork/services/cart/`. */
    readonly prefix: string,
    private readonly parse: (id: string, raw: string) => T,
  ) {
    super();
    this.firstRead = new Promise<void>((resolve, reject) => {
      this.resolveFirst = resolve;
      this.rejectFirst = reject;
    });
    this.firstRead.catch(() => undefined);
    this.resync();
  }

  /** The current values, sorted by key. The array is not mutated later. */
  values(): T[] {
    return this.list;
  }

  /** Resolves after the first successful read of the prefix; rejects if closed before. */
  ready(): Promise<void> {
    return this.firstRead;
  }

  /** Values under the prefix that were ignored because `parse` rejected them. */
  get malformed(): number {
    return this.malformedCount;
  }

  /** Full range reads done so far: 1 after start, +1 per re-read (compaction, data reset). */
  get reads(): number {
    return this.readCount;
  }

  /** Stops watching. The endpoint list stays as it was. */
  async close(): Promise<void> {
    if (!this.closed) {
      this.closed = true;
      this.rejectFirst(new ConnectError(`watcher of ${this.prefix} closed before its first read`, Code.Canceled));
      this.pause.wake();
    }
    await this.resyncs.settled();
    await this.dropWatcher(true);
  }

  /** Requests a full re-read; single-flight like the registration loop. */
  private resync(): void {
    this.resyncs.request();
  }

  /** One re-read: drop the watch, read the prefix, watch again from the read's revision. */
  private async resyncStep(): Promise<void> {
    void this.dropWatcher(false);
    // Paces reads that fail, and re-reads whose new watch is cancelled again before it
    // delivers anything; onData() resets it, so the first re-read after healthy watching is
    // immediate.
    const delay = this.backoff.duration;
    this.backoff = this.backoff.next(undefined);
    if (delay > 0) await this.pause.sleep(delay);
    if (this.closed) return;
    const res = await this.client.getAll().prefix(this.prefix).exec();
    if (this.closed) return;
    this.readCount += 1;
    const next = new Map<string, Entry<T>>();
    for (const kv of res.kvs) this.applyPut(next, kv);
    this.replace(next);
    this.revision = BigInt(res.header.revision);
    this.startWatch();
    this.resolveFirst();
  }

  private startWatch(): void {
    // `.watcher()` rather than `.create()`: listeners must be attached before the first response
    // can arrive, or events delivered in the same tick as the creation would be missed.
    const w = this.client.watch().prefix(this.prefix).startRevision(String(this.revision + 1n)).watcher();
    this.watcher = w;
    w.on("data", (res) => {
      if (w === this.watcher) this.onData(res);
    });
    w.on("connected", (res) => {
      // A revision below what we have applied means etcd's data was reset: history is gone.
      if (w === this.watcher && BigInt(res.header.revision) < this.revision) this.resync();
    });
    w.on("disconnected", () => {
      if (w === this.watcher) w.request.start_revision = String(this.revision + 1n);
    });
    // etcd cancels a watch whose start revision was compacted (compact_revision set); etcd3
    // surfaces any cancel as `error` and drops the watcher.
    w.on("error", () => {
      if (w !== this.watcher) return;
      this.watcher = undefined;
      this.resync();
    });
  }

  private onData(res: IWatchResponse): void {
    this.backoff = RESYNC_BACKOFF.next();
    if (res.events.length === 0) {
      // Progress notifications are only sent to watchers that are caught up: safe to advance.
      if (!res.created && !res.canceled) this.bump(BigInt(res.header.revision));
      return;
    }
    const next = new Map(this.entries);
    for (const ev of res.events) {
      if (ev.type === "Put") this.applyPut(next, ev.kv);
      else next.delete(this.idOf(ev.kv));
      // Not the header revision: during catch-up etcd sends it as the current revision while
      // later events are still to come.
      this.bump(BigInt(ev.kv.mod_revision));
    }
    this.replace(next);
  }

  private bump(rev: bigint): void {
    if (rev > this.revision) this.revision = rev;
  }

  private idOf(kv: IKeyValue): string {
    return kv.key.toString("utf8").slice(this.prefix.length);
  }

  private applyPut(into: Map<string, Entry<T>>, kv: IKeyValue): void {
    const id = this.idOf(kv);
    const raw = kv.value.toString("utf8");
    try {
      into.set(id, { raw, value: this.parse(id, raw) });
    } catch {
      this.malformedCount += 1;
      // The key no longer holds a usable value.
      into.delete(id);
    }
  }

  private replace(next: Map<string, Entry<T>>): void {
    let same = next.size === this.entries.size;
    if (same) for (const [id, e] of next) if (this.entries.get(id)?.raw !== e.raw) same = false;
    if (same) return;
    this.entries.clear();
    for (const [id, e] of [...next].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))) this.entries.set(id, e);
    this.list = [...this.entries.values()].map((e) => e.value);
    this.emit("change", this.list);
  }

  private async dropWatcher(wait: boolean): Promise<void> {
    const w = this.watcher;
    this.watcher = undefined;
    if (!w) return;
    // The handlers above ignore a dropped watcher; a late `error` still needs a listener.
    w.on("error", () => undefined);
    const cancelled = w.cancel().catch(() => undefined);
    if (!wait) return;
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([cancelled, new Promise<void>((r) => (timer = setTimeout(r, CANCEL_TIMEOUT_MS)))]);
    clearTimeout(timer);
  }
}
