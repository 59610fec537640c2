import { ConnectError, type Interceptor } from "@connectrpc/connect";
import type { IdempotencyExtensions } from "../policy/idempotency-extensions.js";
import { createMethodPolicyCache } from "../policy/method-policy.js";
import { runtimeExtensions } from "../policy/runtime-extensions.js";
import { planFromPolicy } from "./client-method-plan.js";
import { randomRequestId } from "./random-request-id.js";
import { type RequestIdSourceOptions, assignRequestId, resolveRequestIdSources } from "./request-id-assignment.js";
import { explainReusedRequestId } from "./reused-request-id-error.js";

/** Options of `createRequestIdInterceptor`. */
export interface RequestIdInterceptorOptions extends RequestIdSourceOptions {
  /** Where the marks come from; default the extensions generated in this package. */
  readonly extensions?: IdempotencyExtensions;
}

/**
 * A client interceptor that fills an empty request ID with a fresh UUIDv4,
 * for any Connect client, reading the request ID field from the method's
 * descriptor (`(idempotency.v1.request_id)` or `(google.api.field_info).format
 * = UUID4`). Fields marked REQUIRED are left to the caller (AIP-4235), a
 * caller's own ID is never replaced, and streaming calls pass through.
 *
 * A call that belongs to an intent (`withRequestIntent`, as the TanStack
 * helpers set it) sends the intent's ID, so that retries by TanStack Query
 * keep it; with `pendingRequestIds`, so do calls sent again after a reload.
 *
 * Put it before `createRetryInterceptor` in the transport's interceptors, so
 * that it runs once per call, every retry carries the same ID, and it sees
 * the call's final outcome.
 */
export function createRequestIdInterceptor(options: RequestIdInterceptorOptions = {}): Interceptor {
  const policyOf = createMethodPolicyCache(options.extensions ?? runtimeExtensions);
  const sources = resolveRequestIdSources(options, randomRequestId);
  return (next) => async (req) => {
    if (req.stream) {
      return await next(req);
    }
    const plan = planFromPolicy(policyOf(req.method));
    if (plan?.requestIdField === undefined) {
      return await next(req);
    }
    const assigned = await assignRequestId(
      req.method,
      req.message,
      plan.requestIdField,
      plan.autoFill === true,
      req.contextValues,
      sources,
    );
    try {
      const response = await next(assigned.request === req.message ? req : { ...req, message: assigned.request });
      await assigned.settle(undefined);
      return response;
    } catch (e) {
      const error = ConnectError.from(e);
      await assigned.settle(error);
      throw explainReusedRequestId(error, req.method, assigned.requestId);
    }
  };
}
