/** Watch-based discovery of registered instances: one cached endpoint list per service, or the whole registry. */
export { Discovery } from "./discovery.js";
export { PrefixWatcher, type PrefixWatcherEvents } from "./prefix-watcher.js";
export { ServiceWatcher, watchRegistry, type ServiceWatcherEvents } from "./service-watcher.js";
