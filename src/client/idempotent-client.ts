import type { DescService } from "@bufbuild/protobuf";
import { type Client, ConnectError, type Transport, createClient } from "@connectrpc/connect";
import { callWithRetry } from "./call-with-retry.js";
import { type ClientMethodPlan, type ClientServicePlan, retriedWithoutRequestId } from "./client-method-plan.js";
import { randomRequestId } from "./random-request-id.js";
import { type RequestIdSourceOptions, assignRequestId, resolveRequestIdSources } from "./request-id-assignment.js";
import { markRetriedCall } from "./retried-call-marker.js";
import { explainReusedRequestId } from "./reused-request-id-error.js";
import { retryOptionsKey } from "./retry-call-options.js";
import { type RetryOptions, resolveRetryPolicy } from "./retry-policy.js";

/** Options of a generated client (`create<Service>Client`). */
export interface IdempotentClientOptions extends RetryOptions, RequestIdSourceOptions {}

/**
 * Creates a Connect client for `service` whose unary calls follow `plan`:
 * an empty request ID is filled with a fresh UUIDv4 where the plan allows it,
 * and calls that carry a request ID, or whose method is safe to retry or
 * deduplicated by a natural key (`key_fields`), are retried with the same
 * request under the retry policy. Streaming calls and
 * methods without a plan are called as they are.
 *
 * A call that belongs to an intent (`withRequestIntent`, as TanStack helpers
 * set it) sends the intent's ID; with `pendingRequestIds`, a call with the
 * same content as one still unanswered (before a reload, say) sends that
 * one's ID. A REQUEST_ID_REUSED error is given a message that says what
 * happened.
 *
 * Generated `create<Service>Client` functions call this with a static plan,
 * so the call path needs no descriptor lookups; call those:
 *
 * ```ts
 * import { createConnectTransport } from "@connectrpc/connect-node";
 * import { createPaymentServiceClient } from "./gen/demo/v1/payments_idempotency.js";
 *
 * const client = createPaymentServiceClient(
 *   createConnectTransport({ baseUrl: "http://localhost:8080", httpVersion: "2" }),
 *   { maxAttempts: 5 },
 * );
 * // The request ID is filled in once, and every retry sends the same one.
 * const { payment } = await client.createPayment({ accountId: "acc_1", amountMinor: 1250n, currency: "EUR" });
 * console.log(payment?.paymentId);
 * ```
 */
export function createIdempotentClient<S extends DescService>(
  service: S,
  transport: Transport,
  plan: ClientServicePlan<S>,
  options: IdempotentClientOptions = {},
): Client<S> {
  return createClient(
    service,
    createIdempotentTransport(transport, plan as Record<string, ClientMethodPlan | undefined>, options, service),
  );
}

/**
 * Wraps a transport so that unary calls follow the plan of their method,
 * looked up by the method's local name. See `createIdempotentClient`.
 *
 * Each attempt is a complete call of `transport`, including its
 * interceptors. The call's `timeoutMs` limits all attempts together: each
 * attempt gets what remains of it.
 *
 * With `service`, only that service's methods follow the plan and every
 * other call passes through, so that the transport can be shared, as
 * connect-query's `TransportProvider` shares one. Generated
 * `create<Service>Transport` functions pass it.
 */
export function createIdempotentTransport(
  transport: Transport,
  plan: Readonly<Record<string, ClientMethodPlan | undefined>>,
  options: IdempotentClientOptions = {},
  service?: DescService,
): Transport {
  const clientPolicy = resolveRetryPolicy(options);
  const sources = resolveRequestIdSources(options, randomRequestId);
  return {
    async unary(method, signal, timeoutMs, header, input, contextValues) {
      const ours = service === undefined || method.parent.typeName === service.typeName;
      const methodPlan = ours && Object.hasOwn(plan, method.localName) ? plan[method.localName] : undefined;
      if (methodPlan === undefined) {
        return await transport.unary(method, signal, timeoutMs, header, input, contextValues);
      }
      const field = methodPlan.requestIdField;
      const assigned =
        field === undefined
          ? undefined
          : await assignRequestId(method, input, field, methodPlan.autoFill === true, contextValues, sources);
      const request = assigned?.request ?? input;
      const requestId = assigned?.requestId;
      if (requestId === undefined && !retriedWithoutRequestId(methodPlan)) {
        return await transport.unary(method, signal, timeoutMs, header, request, contextValues);
      }
      const callOptions = contextValues?.get(retryOptionsKey);
      const values = markRetriedCall(contextValues);
      try {
        const response = await callWithRetry({
          method,
          requestId,
          policy: callOptions === undefined ? clientPolicy : resolveRetryPolicy(options, callOptions),
          signal,
          timeoutMs,
          attempt: (remainingMs) => transport.unary(method, signal, remainingMs ?? timeoutMs, header, request, values),
        });
        await assigned?.settle(undefined);
        return response;
      } catch (e) {
        const error = ConnectError.from(e);
        await assigned?.settle(error);
        throw explainReusedRequestId(error, method, requestId);
      }
    },
    stream(method, signal, timeoutMs, header, input, contextValues) {
      return transport.stream(method, signal, timeoutMs, header, input, contextValues);
    },
  };
}
