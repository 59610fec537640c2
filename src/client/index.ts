// The client side of connect-idempotency, importable on its own as
// `connect-idempotency/client`: what generated clients import, the
// interceptors for clients without codegen, the TanStack Query helpers, and
// what a caller reads from answers. Browser-safe: no Node.js module, no store.

export { callWithOutcome, type CallOutcome } from "./call-with-outcome.js";
export { callWithRetry, type RetriedCall } from "./call-with-retry.js";
export {
  planFromPolicy,
  type ClientMethodPlan,
  type ClientServicePlan,
  type RequestIdFieldName,
} from "./client-method-plan.js";
export {
  expiresHeader,
  firstExecutedAtHeader,
  idempotencyExposedHeaders,
  replayedHeader,
} from "./idempotency-headers.js";
export {
  createIdempotentClient,
  createIdempotentTransport,
  type IdempotentClientOptions,
} from "./idempotent-client.js";
export { idempotentMutationFn } from "./idempotent-mutation-fn.js";
export { idempotentMutationOptions, type MutationOptionsWithTransport } from "./idempotent-mutation-options.js";
export { createMemoryPendingRequestIds } from "./memory-pending-request-ids.js";
export { pendingKeyKey, withPendingKey } from "./pending-key.js";
export {
  defaultPendingTtlMs,
  type PendingRequestIdEntry,
  type PendingRequestIds,
} from "./pending-request-ids.js";
export { lookupOutcome, type LookedUpOutcome, type LookedUpTimes } from "./lookup-outcome.js";
export { lookupPendingOutcome, type PendingOutcome } from "./lookup-pending-outcome.js";
export { randomRequestId } from "./random-request-id.js";
export { readReplayInfo, type ReplayInfo } from "./replay-info.js";
export type { RequestIdSourceOptions } from "./request-id-assignment.js";
export { createRequestIdInterceptor, type RequestIdInterceptorOptions } from "./request-id-interceptor.js";
export { createRequestIntent, requestIntentKey, withRequestIntent, type RequestIntent } from "./request-intent.js";
export { retryOptionsKey, withRetryOptions } from "./retry-call-options.js";
export { createRetryInterceptor, type RetryInterceptorOptions } from "./retry-interceptor.js";
export { isRetryableError } from "./retryable-error.js";
export { resolveRetryPolicy, type RetryEvent, type RetryOptions, type RetryPolicy } from "./retry-policy.js";
export {
  createWebStoragePendingRequestIds,
  type WebStorageLike,
  type WebStoragePendingRequestIdsOptions,
} from "./web-storage-pending-request-ids.js";
// The error reasons and their readers live here, for the server's users too:
// browser code matches on them without importing the package root (which
// holds the server and stores).
export { ERROR_DOMAIN, ErrorReason } from "../errors/error-reason.js";
export { findErrorReason, findRetryDelayMs } from "../errors/idempotency-error.js";
