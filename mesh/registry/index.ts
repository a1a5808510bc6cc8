/** Service registration in etcd: one leased key per instance, kept alive and self-healing. */
export { SERVICES_PREFIX, instanceKey, servicePrefix, parseInstance, type InstanceInfo } from "./instance.js";
export { Registration, type RegistrationOptions, type RegistrationEvents } from "./registration.js";
