import type { CallOptions } from "@connectrpc/connect";
import { type RequestIntent, createRequestIntent, withRequestIntent } from "./request-intent.js";

// TanStack Query v5 passes one context object to every attempt of one
// mutation (`Mutation.execute`) and a new one to the next mutation: the
// identity of one `mutate()`.
const intents = new WeakMap<object, RequestIntent>();

/**
 * Wraps a TanStack Query `mutationFn` so that one `mutate()` carries one
 * request ID across every retry of TanStack (`retry: 3`) and of
 * connect-idempotency's clients: `fn` gets call options to pass to the
 * client, whose calls then share the ID the first attempt chose. A request
 * ID the caller set in the variables is kept; the next `mutate()` gets a new
 * ID (unless pending request IDs find the same operation unanswered).
 *
 * ```ts
 * const pay = useMutation({
 *   mutationFn: idempotentMutationFn((cart: CreatePaymentRequestInit, callOptions) =>
 *     client.createPayment(cart, callOptions)),
 *   retry: 3,
 * });
 * ```
 *
 * Works with `useMutation` of `@tanstack/react-query` (and the other
 * framework adapters) and with `MutationObserver` of `@tanstack/query-core`,
 * version 5. For connect-query's `useMutation(method, options)`, use
 * `idempotentMutationOptions`.
 */
export function idempotentMutationFn<V, R>(
  fn: (variables: V, callOptions: CallOptions) => Promise<R>,
): (variables: V, context?: unknown) => Promise<R> {
  return (variables, context) => fn(variables, { contextValues: withRequestIntent(intentOf(context)) });
}

function intentOf(context: unknown): RequestIntent {
  if (typeof context !== "object" || context === null) {
    // Called without TanStack's context: nothing ties attempts together.
    return createRequestIntent();
  }
  let intent = intents.get(context);
  if (intent === undefined) {
    intent = createRequestIntent();
    intents.set(context, intent);
  }
  return intent;
}
