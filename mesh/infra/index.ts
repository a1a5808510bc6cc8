/**
 * Real infrastructure as child processes: etcd and NATS JetStream on free ports with their own
 * data dirs, and databases on the test PostgreSQL server. Used by tests and by the local mesh.
 */
export { startEtcd, type EtcdServer, type EtcdOptions } from "./etcd.js";
export { startNats, type NatsServer, type NatsOptions } from "./nats.js";
export { createTestDatabase, postgresAvailable, TEST_PG_ADMIN_URL, type TestDatabase } from "./postgres.js";
export { freePort, startOnFreePorts } from "./ports.js";
export { waitFor, type WaitOptions } from "./wait.js";
export { findBinary } from "./binaries.js";
export { startProcess, tsxArgs, processAlive, type ManagedProcess } from "./child.js";
export { serviceNodeFlags, NODE_FLAGS_FILE } from "./node-flags.js";
