/**
 * Replayable responses for mutating calls: the first call under an idempotency key executes and its
 * result is stored in the service's own database; repeats replay it, concurrent repeats wait.
 */
export {
  IdempotencyStore,
  idempotencyMigrations,
  IDEMPOTENCY_MIGRATION_TABLE,
  FINAL_ERROR_CODES,
  hashRequest,
} from "./idempotency-store.js";
