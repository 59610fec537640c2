import { type ContextValues, createContextKey, createContextValues } from "@connectrpc/connect";
import type { RetryOptions } from "./retry-policy.js";

/**
 * The context key that carries retry options for one call. They override the
 * client's or interceptor's options where they set a value.
 */
export const retryOptionsKey = createContextKey<RetryOptions | undefined>(undefined, {
  description: "connect-idempotency retry options for one call",
});

/**
 * Context values that set retry options for one call, for Connect's call
 * options:
 *
 * ```ts
 * await client.createPayment(request, {
 *   contextValues: withRetryOptions({ maxAttempts: 2 }),
 * });
 * ```
 *
 * Pass `contextValues` to add the options to values you already have.
 */
export function withRetryOptions(
  options: RetryOptions,
  contextValues: ContextValues = createContextValues(),
): ContextValues {
  return contextValues.set(retryOptionsKey, options);
}
