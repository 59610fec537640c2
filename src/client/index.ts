// The client side of connect-idempotency, importable on its own as
// `connect-idempotency/client` (no server or store code): what generated
// clients import, and the interceptors for clients without codegen.

export { callWithRetry, type RetriedCall } from "./call-with-retry.js";
export {
  planFromPolicy,
  type ClientMethodPlan,
  type ClientServicePlan,
  type RequestIdFieldName,
} from "./client-method-plan.js";
export {
  createIdempotentClient,
  createIdempotentTransport,
  type IdempotentClientOptions,
} from "./idempotent-client.js";
export { createRequestIdInterceptor, type RequestIdInterceptorOptions } from "./request-id-interceptor.js";
export { retryOptionsKey, withRetryOptions } from "./retry-call-options.js";
export { createRetryInterceptor, type RetryInterceptorOptions } from "./retry-interceptor.js";
export { isRetryableError } from "./retryable-error.js";
export { resolveRetryPolicy, type RetryEvent, type RetryOptions, type RetryPolicy } from "./retry-policy.js";
