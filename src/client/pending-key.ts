import { type ContextValues, createContextKey, createContextValues } from "@connectrpc/connect";

/**
 * The context key of a caller-chosen pending key. See `withPendingKey`.
 */
export const pendingKeyKey = createContextKey<string | undefined>(undefined, {
  description: "connect-idempotency: the caller's key of a pending operation",
});

/**
 * Context values that name the operation a call is, for pending request IDs:
 * calls of the same method with the same key share the pending request ID,
 * whatever their content, instead of calls with the same content.
 *
 * A checkout keys its payment by its cart, so that a cart changed after a
 * reload, while the first payment has no answer yet, goes out under the
 * first payment's ID, and the server answers REQUEST_ID_REUSED instead of
 * charging a second time:
 *
 * ```ts
 * await client.createPayment(request, { contextValues: withPendingKey(`cart-${cartId}`) });
 * ```
 */
export function withPendingKey(key: string, contextValues: ContextValues = createContextValues()): ContextValues {
  return contextValues.set(pendingKeyKey, key);
}
