import type { Interceptor } from "@connectrpc/connect";
import type { IdempotencyExtensions } from "../policy/idempotency-extensions.js";
import { createMethodPolicyCache } from "../policy/method-policy.js";
import { runtimeExtensions } from "../policy/runtime-extensions.js";
import { planFromPolicy } from "./client-method-plan.js";
import { fillRequestId } from "./fill-request-id.js";

/** Options of `createRequestIdInterceptor`. */
export interface RequestIdInterceptorOptions {
  /** Makes a new request ID. Default `crypto.randomUUID`. */
  readonly generateRequestId?: () => string;
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
 * Put it before `createRetryInterceptor` in the transport's interceptors, so
 * that it runs once per call and every retry carries the same ID.
 */
export function createRequestIdInterceptor(options: RequestIdInterceptorOptions = {}): Interceptor {
  const policyOf = createMethodPolicyCache(options.extensions ?? runtimeExtensions);
  const generate = options.generateRequestId ?? (() => crypto.randomUUID());
  return (next) => async (req) => {
    if (req.stream) {
      return await next(req);
    }
    const plan = planFromPolicy(policyOf(req.method));
    if (plan?.requestIdField === undefined || plan.autoFill !== true) {
      return await next(req);
    }
    const { request } = fillRequestId(req.method.input, req.message, plan.requestIdField, generate);
    return await next(request === req.message ? req : { ...req, message: request });
  };
}
