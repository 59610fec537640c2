import { type CallOptions, createContextValues } from "@connectrpc/connect";
import { type ReplayInfo, readReplayInfo } from "./replay-info.js";
import { createRequestIntent, requestIntentKey } from "./request-intent.js";

/** What `callWithOutcome` resolves to: the response, and how it came about. */
export interface CallOutcome<R> extends ReplayInfo {
  /** The response message. */
  readonly response: R;
  /** The request ID the call carried; undefined when it carried none or no connect-idempotency client filled it. */
  readonly requestId: string | undefined;
}

/**
 * Calls one unary method of a Connect client and tells, next to the
 * response, whether the answer was replayed (the handler did not run for
 * this call), when the first execution happened when the server says so, and
 * which request ID the call carried.
 *
 * ```ts
 * const { response, replayed, firstExecutedAt } = await callWithOutcome(client.createPayment, request);
 * if (replayed) {
 *   // The charge of an earlier attempt: show it, do not book it again.
 * }
 * ```
 *
 * Works with generated clients and with clients that use
 * `createRequestIdInterceptor`; `options` are the call's options, kept as
 * they are (their `onHeader` still runs).
 */
export async function callWithOutcome<I, R>(
  method: (request: I, options?: CallOptions) => Promise<R>,
  request: I,
  options: CallOptions = {},
): Promise<CallOutcome<R>> {
  const contextValues = options.contextValues ?? createContextValues();
  const intent = contextValues.get(requestIntentKey) ?? createRequestIntent();
  contextValues.set(requestIntentKey, intent);
  let header: Headers | undefined;
  const response = await method(request, {
    ...options,
    contextValues,
    onHeader(received) {
      header = received;
      options.onHeader?.(received);
    },
  });
  return { response, requestId: intent.requestId, ...readReplayInfo(header) };
}
