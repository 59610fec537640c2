// The public API of connect-idempotency. Each module adds its exports here.

export { ErrorReason, ERROR_DOMAIN } from "./errors/error-reason.js";
export {
  createIdempotencyError,
  findErrorReason,
  findRetryDelayMs,
  type IdempotencyErrorDetails,
} from "./errors/idempotency-error.js";
export type { IdempotencyExtensions } from "./policy/idempotency-extensions.js";
export {
  resolveMethodPolicy,
  type MethodIdempotencyPolicy,
  type RequestIdFormat,
} from "./policy/method-policy.js";
export { canonicalizeRequestId, type RequestIdCheck } from "./policy/request-id-format.js";
export { runtimeExtensions } from "./policy/runtime-extensions.js";
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
  IdempotencyEvent,
  IdempotencyEventType,
  StoreCall,
  StoreOperation,
} from "./server/idempotency-event.js";
export { createIdempotencyInterceptor } from "./server/idempotency-interceptor.js";
export type { IdempotencyInterceptorOptions } from "./server/interceptor-options.js";
export type { ReplayCacheOptions } from "./server/replay-cache.js";
export {
  idempotencyContext,
  type IdempotencyContextValue,
} from "./server/idempotency-context.js";
export {
  defaultIndefiniteCodes,
  defaultReleasedCodes,
  defaultStoredCodes,
  interruptOnError,
  releaseOnError,
  storeOnError,
  type ErrorDisposition,
} from "./server/error-disposition.js";
export { decodeStoredOutcome, encodeStoredOutcome, type StoredOutcomeValue } from "./server/stored-outcome.js";
export { fingerprintRequest } from "./server/request-fingerprint.js";
export { hashRecordKey } from "./server/key-hash.js";
export { expiresHeader, replayedHeader } from "./server/protocol-headers.js";
export { setExecutedResourceName } from "./server/executed-resource-name.js";
export {
  createIdempotencyService,
  registerIdempotencyService,
  type IdempotencyServiceOptions,
} from "./server/idempotency-service.js";
export type { SweepReport } from "./store/record-sweeper.js";
export {
  createSqliteStore,
  type SqliteDurability,
  type SqliteStore,
  type SqliteStoreOptions,
  type SqliteStoreProblem,
} from "./store/sqlite/sqlite-store.js";
export type { SqliteBatchExecutor, SqliteJobOptions } from "./store/sqlite/sqlite-batch-executor.js";
export type { SqliteIntegrityCheck } from "./store/sqlite/sqlite-integrity-check.js";
export { isStoreCorruptError, type StoreCorruptError } from "./store/store-corrupt-error.js";
// `pg` stays optional: the PostgreSQL store loads it only when it creates its own pool.
export {
  createPostgresStore,
  type PostgresStore,
  type PostgresStoreOptions,
} from "./store/postgres/postgres-store.js";
export type { PostgresStatements } from "./store/postgres/postgres-statements.js";
export { runCluster, type ClusterWorkerExit, type RunClusterOptions } from "./server/run-cluster.js";
export {
  createIdempotentClient,
  createRequestIdInterceptor,
  createRetryInterceptor,
  isRetryableError,
  retryOptionsKey,
  withRetryOptions,
  type ClientMethodPlan,
  type ClientServicePlan,
  type IdempotentClientOptions,
  type RequestIdInterceptorOptions,
  type RetryEvent,
  type RetryInterceptorOptions,
  type RetryOptions,
} from "./client/index.js";
export {
  createIdempotencyTelemetry,
  type IdempotencyTelemetry,
  type IdempotencyTelemetryOptions,
} from "./otel/idempotency-telemetry.js";
export { TelemetryAttribute, TelemetryMetric, type TelemetryOutcome } from "./otel/telemetry-names.js";
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
export { atomicEffects, type AtomicEffects } from "./server/atomic-effects.js";
export { DERIVED_KEY_NAMESPACE, deriveRequestId, type DerivedKeyInput } from "./server/derived-key.js";
export type { PhaseJsonResult } from "./server/phase-codec.js";
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
