import { type ContextValues, createContextKey, createContextValues } from "@connectrpc/connect";

/**
 * One operation the caller means to happen once, such as one `mutate()` of
 * TanStack Query, across every call that carries it. The first call that
 * needs a request ID records it here; every later call with the same intent
 * sends that ID instead of making a new one.
 */
export interface RequestIntent {
  /** The request ID of the operation, once a call has chosen one. */
  requestId: string | undefined;
}

/**
 * The context key of the intent a call belongs to. Generated clients and
 * `createRequestIdInterceptor` read it; `idempotentMutationFn`,
 * `idempotentMutationOptions` and `callWithOutcome` set it.
 */
export const requestIntentKey = createContextKey<RequestIntent | undefined>(undefined, {
  description: "connect-idempotency: the operation a call belongs to",
});

/** Creates an intent, optionally with a request ID already chosen. */
export function createRequestIntent(requestId?: string): RequestIntent {
  return { requestId };
}

/**
 * Context values that make a call part of `intent`, for Connect's call
 * options. Pass `contextValues` to add it to values you already have.
 *
 * ```ts
 * const intent = createRequestIntent();
 * // Both calls send the same request ID, whatever happens in between.
 * await client.createPayment(request, { contextValues: withRequestIntent(intent) }).catch(() => undefined);
 * await client.createPayment(request, { contextValues: withRequestIntent(intent) });
 * ```
 */
export function withRequestIntent(
  intent: RequestIntent,
  contextValues: ContextValues = createContextValues(),
): ContextValues {
  return contextValues.set(requestIntentKey, intent);
}
