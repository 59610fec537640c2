import type { Interceptor } from "@connectrpc/connect";
import type { IdempotencyExtensions } from "../policy/idempotency-extensions.js";
import { createMethodPolicyCache } from "../policy/method-policy.js";
import { runtimeExtensions } from "../policy/runtime-extensions.js";
import { callWithRetry } from "./call-with-retry.js";
import { planFromPolicy, retriedWithoutRequestId } from "./client-method-plan.js";
import { readRequestId } from "./fill-request-id.js";
import { isRetriedCall } from "./retried-call-marker.js";
import { retryOptionsKey } from "./retry-call-options.js";
import { type RetryOptions, resolveRetryPolicy } from "./retry-policy.js";

/** Options of `createRetryInterceptor`: a retry policy, and where marks come from. */
export interface RetryInterceptorOptions extends RetryOptions {
  /** Where the marks come from; default the extensions generated in this package. */
  readonly extensions?: IdempotencyExtensions;
}

/**
 * A client interceptor that retries unary calls that are safe to retry, for
 * any Connect client: calls whose request ID field (read from the method's
 * descriptor) is set, calls of methods marked NO_SIDE_EFFECTS or
 * IDEMPOTENT, and calls of methods deduplicated by a natural key
 * (`key_fields`). Other calls, streaming calls, and calls a generated client
 * already retries pass through once.
 *
 * Every attempt sends the same request, so the same request ID. Place it
 * after `createRequestIdInterceptor`; placed before it, calls without an ID of
 * their own are not retried at all, rather than retried with a new ID.
 *
 * Connect applies the call's `timeoutMs` and signal to all attempts together.
 */
export function createRetryInterceptor(options: RetryInterceptorOptions = {}): Interceptor {
  const interceptorPolicy = resolveRetryPolicy(options);
  const policyOf = createMethodPolicyCache(options.extensions ?? runtimeExtensions);
  return (next) => async (req) => {
    if (req.stream || isRetriedCall(req.contextValues)) {
      return await next(req);
    }
    const plan = planFromPolicy(policyOf(req.method));
    const requestId = plan?.requestIdField === undefined ? undefined : readRequestId(req.message, plan.requestIdField);
    if (requestId === undefined && !retriedWithoutRequestId(plan)) {
      return await next(req);
    }
    const callOptions = req.contextValues.get(retryOptionsKey);
    return await callWithRetry({
      method: req.method,
      requestId,
      policy: callOptions === undefined ? interceptorPolicy : resolveRetryPolicy(options, callOptions),
      signal: req.signal,
      timeoutMs: undefined,
      attempt: () => next(req),
    });
  };
}
