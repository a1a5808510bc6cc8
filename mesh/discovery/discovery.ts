import type { Etcd3 } from "etcd3";
import { ServiceWatcher } from "./service-watcher.js";

/**
 * One per process: hands out a shared {@link ServiceWatcher} per service name, so every client
 * of a service reads the same cache and etcd sees one watch per service.
 */
export class Discovery {
  private readonly watchers = new Map<string, ServiceWatcher>();

  /** The client stays owned by the caller; close it after {@link close}. */
  constructor(private readonly client: Etcd3) {}

  /** The watcher of `service`, created (and started) on first use. */
  watch(service: string): ServiceWatcher {
    let w = this.watchers.get(service);
    if (!w) {
      w = new ServiceWatcher(this.client, service);
      this.watchers.set(service, w);
    }
    return w;
  }

  /** Closes every watcher; later `watch()` calls start fresh ones. */
  async close(): Promise<void> {
    const all = [...this.watchers.values()];
    this.watchers.clear();
    await Promise.all(all.map((w) => w.close()));
  }
}
