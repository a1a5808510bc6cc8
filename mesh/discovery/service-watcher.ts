import type { Etcd3 } from "etcd3";
import { InstanceInfo, parseInstance, SERVICES_PREFIX, servicePrefix } from "../registry/instance.js";
import { PrefixWatcher, type PrefixWatcherEvents } from "./prefix-watcher.js";

/** Events of a {@link ServiceWatcher}: `change` carries the full current endpoint list. */
export type ServiceWatcherEvents = PrefixWatcherEvents<InstanceInfo>;

/**
 * A watch-based cache of one service's instances under `/meshwork/services/<service>/`, with the
 * outage, replay, compaction and reset handling of {@link PrefixWatcher}. A value that does not
 * parse as an {@link InstanceInfo} of this service under its own instance id is ignored and
 * counted in `malformed`.
 */
export class ServiceWatcher extends PrefixWatcher<InstanceInfo> {
  /** Starts reading and watching at once; `ready()` resolves after the first read. */
  constructor(
    client: Etcd3,
    readonly service: string,
  ) {
    super(client, servicePrefix(service), (id, raw) => {
      const info = parseInstance(raw);
      if (info.instance !== id || info.service !== service) throw new Error("key does not match value");
      return info;
    });
  }

  /** The current instances, sorted by instance id. The array is not mutated later. */
  endpoints(): InstanceInfo[] {
    return this.values();
  }
}

/**
 * Every registered instance of every service (`/meshwork/services/`), sorted by service, then
 * instance id: the mesh as the console shows it. Values whose service and instance do not match
 * their key are ignored.
 */
export function watchRegistry(client: Etcd3): PrefixWatcher<InstanceInfo> {
  return new PrefixWatcher(client, SERVICES_PREFIX, (id, raw) => {
    const info = parseInstance(raw);
    if (`${info.service}/${info.instance}` !== id) throw new Error("key does not match value");
    return info;
  });
}
