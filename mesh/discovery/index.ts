/** Watch-based discovery of registered instances: one cached endpoint list per service. */
export { Discovery } from "./discovery.js";
export { ServiceWatcher, type ServiceWatcherEvents } from "./service-watcher.js";
