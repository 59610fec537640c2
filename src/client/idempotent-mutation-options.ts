import { type Transport, createContextValues } from "@connectrpc/connect";
import { type RequestIntent, createRequestIntent, withRequestIntent } from "./request-intent.js";

// connect-query's `useMutation` hands the transport the variables object of
// `mutate()` on every attempt, and nothing else that outlives one attempt:
// `onMutate`, which runs once per `mutate()` before the first attempt, starts
// a new intent for that object. Module-wide, because the hook's options are
// rebuilt on every render while a mutation keeps retrying.
const intents = new WeakMap<object, RequestIntent>();

/** What `idempotentMutationOptions` needs of connect-query's mutation options. */
export interface MutationOptionsWithTransport {
  /** The transport of the mutation. connect-query's own default from context cannot be wrapped. */
  readonly transport: Transport;
}

/**
 * Wraps the options of connect-query's `useMutation(method, options)` so that
 * one `mutate()` carries one request ID across every TanStack retry: the
 * transport passes each attempt's intent to connect-idempotency's
 * interceptors (`createRequestIdInterceptor`, which fills and keeps the ID)
 * or to a transport from `createIdempotentTransport`. Your own `onMutate`
 * still runs.
 *
 * ```ts
 * const transport = createConnectTransport({
 *   baseUrl,
 *   interceptors: [createRequestIdInterceptor(), createRetryInterceptor()],
 * });
 * const pay = useMutation(PaymentService.method.createPayment, idempotentMutationOptions({ transport, retry: 3 }));
 * pay.mutate({ accountId, amountMinor, currency });
 * ```
 *
 * `mutate()` must get a variables object: without one connect-query makes a
 * new empty request per attempt, and nothing ties them together.
 */
export function idempotentMutationOptions<O extends MutationOptionsWithTransport>(options: O): O {
  const own = (options as { readonly onMutate?: (...args: unknown[]) => unknown }).onMutate;
  const wrapped = {
    ...options,
    transport: createIntentTransport(options.transport),
    onMutate(...args: unknown[]): unknown {
      const [variables] = args;
      if (typeof variables === "object" && variables !== null) {
        intents.set(variables, createRequestIntent());
      }
      return own?.(...args);
    },
  };
  return wrapped as unknown as O;
}

function createIntentTransport(transport: Transport): Transport {
  return {
    unary(method, signal, timeoutMs, header, input, contextValues) {
      const intent = intents.get(input);
      const values =
        intent === undefined ? contextValues : withRequestIntent(intent, contextValues ?? createContextValues());
      return transport.unary(method, signal, timeoutMs, header, input, values);
    },
    stream(method, signal, timeoutMs, header, input, contextValues) {
      return transport.stream(method, signal, timeoutMs, header, input, contextValues);
    },
  };
}
