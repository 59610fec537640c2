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
  StoreOperation,
} from "./server/idempotency-event.js";
