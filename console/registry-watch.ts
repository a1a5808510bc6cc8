/**
 * Every registered instance of every service: a range read of `/meshwork/services/`, then a watch
 * from the read's revision + 1. mesh/discovery's ServiceWatcher does this for one service; the
 * console needs the whole prefix, so this is the same technique over all of it.
 */
import { EventEmitter } from "node:events";
import { ExponentialBackoff, type IBackoff } from "cockatiel";
import type { Etcd3, IKeyValue, IWatchResponse, Watcher } from "etcd3";
import { parseInstance, SERVICES_PREFIX, type InstanceInfo } from "../mesh/registry/index.js";

/** Events of a {@link RegistryWatch}. */
export interface RegistryWatchEvents {
  /** The set of instances changed; carries the full list. */
  change: [instances: InstanceInfo[]];
}

// ~100 ms → 5 s between failed reads: quick after a blip, a trickle during a long outage (as in
// mesh/discovery).
const RESYNC_BACKOFF = new ExponentialBackoff({ initialDelay: 100, maxDelay: 5_000 });
// Bounds close() when the cancel request cannot reach etcd; the watch is dropped either way.
const CANCEL_TIMEOUT_MS = 1_000;

/**
 * A watch-based cache of all instances, keyed `<service>/<instance>`. During an etcd outage it
 * keeps the last known list; after a reconnect the watch resumes from the last applied revision
 * (etcd3 would move its start revision past replayed events, see mesh/discovery); a cancelled
 * watch (compaction) or a revision going backwards (data reset) triggers a full re-read.
 * Values that do not parse as an InstanceInfo matching their key are ignored.
 */
export class RegistryWatch extends EventEmitter<RegistryWatchEvents> {
  private entries = new Map<string, { raw: string; info: InstanceInfo }>();
  private revision = 0n;
  private watcher: Watcher | undefined;
  private closed = false;
  private wanted = false;
  private running = false;
  private loopDone: Promise<void> = Promise.resolve();
  private wake: (() => void) | undefined;
  private backoff: IBackoff<unknown> = RESYNC_BACKOFF.next();
  private readonly firstRead: Promise<void>;
  private resolveFirst!: () => void;

  constructor(private readonly etcd: Etcd3) {
    super();
    this.firstRead = new Promise((resolve) => (this.resolveFirst = resolve));
    this.resync();
  }

  /** Current instances sorted by service, then instance id. */
  instances(): InstanceInfo[] {
    return [...this.entries.values()].map((e) => e.info);
  }

  /** Resolves after the first successful read (or on close). */
  ready(): Promise<void> {
    return this.firstRead;
  }

  async close(): Promise<void> {
    if (!this.closed) {
      this.closed = true;
      this.resolveFirst();
      this.wake?.();
    }
    await this.loopDone;
    await this.dropWatcher(true);
  }

  private resync(): void {
    this.wanted = true;
    if (this.running || this.closed) return;
    this.running = true;
    this.loopDone = this.resyncLoop();
  }

  private async resyncLoop(): Promise<void> {
    while (this.wanted && !this.closed) {
      this.wanted = false;
      void this.dropWatcher(false);
      const delay = this.backoff.duration;
      this.backoff = this.backoff.next(undefined);
      if (delay > 0) await this.sleep(delay);
      if (this.closed) break;
      try {
        const res = await this.etcd.getAll().prefix(SERVICES_PREFIX).exec();
        if (this.closed) break;
        const next = new Map<string, { raw: string; info: InstanceInfo }>();
        for (const kv of res.kvs) this.applyPut(next, kv);
        this.replace(next);
        this.revision = BigInt(res.header.revision);
        this.startWatch();
        this.resolveFirst();
      } catch {
        this.wanted = true;
      }
    }
    this.running = false;
  }

  private startWatch(): void {
    // `.watcher()` so the listeners exist before the first response can arrive.
    const w = this.etcd.watch().prefix(SERVICES_PREFIX).startRevision(String(this.revision + 1n)).watcher();
    this.watcher = w;
    w.on("data", (res) => {
      if (w === this.watcher) this.onData(res);
    });
    w.on("connected", (res) => {
      if (w === this.watcher && BigInt(res.header.revision) < this.revision) this.resync();
    });
    w.on("disconnected", () => {
      if (w === this.watcher) w.request.start_revision = String(this.revision + 1n);
    });
    w.on("error", () => {
      if (w !== this.watcher) return;
      this.watcher = undefined;
      this.resync();
    });
  }

  private onData(res: IWatchResponse): void {
    this.backoff = RESYNC_BACKOFF.next();
    if (res.events.length === 0) {
      if (!res.created && !res.canceled) this.bump(BigInt(res.header.revision));
      return;
    }
    const next = new Map(this.entries);
    for (const ev of res.events) {
      if (ev.type === "Put") this.applyPut(next, ev.kv);
      else next.delete(keyOf(ev.kv));
      this.bump(BigInt(ev.kv.mod_revision));
    }
    this.replace(next);
  }

  private bump(rev: bigint): void {
    if (rev > this.revision) this.revision = rev;
  }

  private applyPut(into: Map<string, { raw: string; info: InstanceInfo }>, kv: IKeyValue): void {
    const key = keyOf(kv);
    const raw = kv.value.toString("utf8");
    try {
      const info = parseInstance(raw);
      if (`${info.service}/${info.instance}` !== key) throw new Error("key does not match value");
      into.set(key, { raw, info });
    } catch {
      into.delete(key);
    }
  }

  private replace(next: Map<string, { raw: string; info: InstanceInfo }>): void {
    let same = next.size === this.entries.size;
    if (same) for (const [k, e] of next) if (this.entries.get(k)?.raw !== e.raw) same = false;
    if (same) return;
    this.entries = new Map([...next].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));
    this.emit("change", this.instances());
  }

  private async dropWatcher(wait: boolean): Promise<void> {
    const w = this.watcher;
    this.watcher = undefined;
    if (!w) return;
    w.on("error", () => undefined);
    const cancelled = w.cancel().catch(() => undefined);
    if (!wait) return;
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([cancelled, new Promise<void>((r) => (timer = setTimeout(r, CANCEL_TIMEOUT_MS)))]);
    clearTimeout(timer);
  }

  private sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const timer = setTimeout(done, ms);
      function done() {
        clearTimeout(timer);
        resolve();
      }
      this.wake = done;
    });
  }
}

function keyOf(kv: IKeyValue): string {
  return kv.key.toString("utf8").slice(SERVICES_PREFIX.length);
}
