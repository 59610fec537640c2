// The server side of connect-idempotency: the interceptor and what configures
// it, the stores and their admin, atomic effects, the lookup service and
// telemetry. The client API is `connect-idempotency/client` (browser-safe, with
// the error reasons a caller matches on), test helpers are
// `connect-idempotency/testing`, and what store or tool authors need beyond the
// store contract is `connect-idempotency/protocol`, outside semantic versioning.

// The interceptor and what configures it.
export { createIdempotencyInterceptor } from "./server/idempotency-interceptor.js";
export type { IdempotencyInterceptorOptions } from "./server/interceptor-options.js";
export type { ReplayCacheOptions } from "./server/replay-cache.js";
export {
  defaultIndefiniteCodes,
  defaultReleasedCodes,
  defaultStoredCodes,
  interruptOnError,
  releaseOnError,
  storeOnError,
  type ErrorDisposition,
} from "./server/error-disposition.js";
export type { IdempotencyExtensions } from "./policy/idempotency-extensions.js";
export { runtimeExtensions } from "./policy/runtime-extensions.js";
export type {
  IdempotencyEvent,
  IdempotencyEventType,
  StoreCall,
  StoreOperation,
} from "./server/idempotency-event.js";
export { hashRecordKey } from "./server/key-hash.js";

// What a handler uses.
export {
  idempotencyContext,
  type IdempotencyContextValue,
} from "./server/idempotency-context.js";
export { setExecutedResourceName } from "./server/executed-resource-name.js";
export { atomicEffects, type AtomicEffects } from "./server/atomic-effects.js";
export type { PhaseJsonResult } from "./server/phase-codec.js";
export { deriveRequestId, type DerivedKeyInput } from "./server/derived-key.js";

// The stores.
export {
  createSqliteStore,
  type SqliteDurability,
  type SqliteStore,
  type SqliteStoreOptions,
  type SqliteStoreProblem,
} from "./store/sqlite/sqlite-store.js";
export type { SqliteBatchExecutor, SqliteJobOptions } from "./store/sqlite/sqlite-batch-executor.js";
export type { SqliteIntegrityCheck } from "./store/sqlite/sqlite-integrity-check.js";
// `pg` stays optional: the PostgreSQL store loads it only when it creates its own pool.
export {
  createPostgresStore,
  type PostgresStore,
  type PostgresStoreOptions,
} from "./store/postgres/postgres-store.js";
export type { PostgresStatements } from "./store/postgres/postgres-statements.js";
export { isStoreCorruptError, type StoreCorruptError } from "./store/store-corrupt-error.js";
export type { SweepReport } from "./store/record-sweeper.js";
export type {
  FoundRecord,
  IdempotencyStoreAdmin,
  MethodStats,
  RecordFilter,
  RecordSummary,
  RecordWhere,
  StoreStats,
} from "./store/idempotency-store-admin.js";
export { openSqliteStoreAdmin, type SqliteStoreAdminOptions } from "./store/sqlite/sqlite-store-admin.js";
export { openPostgresStoreAdmin, type PostgresStoreAdminOptions } from "./store/postgres/postgres-store-admin.js";

// The store contract, for other stores.
export type {
  ClaimInput,
  ClaimResult,
  CompleteInput,
  IdempotencyRecord,
  IdempotencyStore,
  OwnerInput,
  RecordKey,
  RecordStatus,
  RenewInput,
  SweepInput,
} from "./store/idempotency-store.js";
export type {
  AtomicCompletion,
  AtomicIdempotencyStore,
  CompleteWithinInput,
  CompleteWithinResult,
  PhaseKey,
  RecordPhaseInput,
  TransactionMode,
  SynchronousTransactionRequired,
  TransactionWork,
} from "./store/atomic-idempotency-store.js";

// The lookup service, telemetry and clustering.
export {
  createIdempotencyService,
  registerIdempotencyService,
  type IdempotencyServiceOptions,
} from "./server/idempotency-service.js";
export {
  createIdempotencyTelemetry,
  type IdempotencyTelemetry,
  type IdempotencyTelemetryOptions,
} from "./otel/idempotency-telemetry.js";
export { TelemetryAttribute, TelemetryMetric, type TelemetryOutcome } from "./otel/telemetry-names.js";
export { runCluster, type ClusterWorkerExit, type RunClusterOptions } from "./server/run-cluster.js";
