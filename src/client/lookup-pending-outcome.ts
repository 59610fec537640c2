import type { DescMessage, DescMethodUnary } from "@bufbuild/protobuf";
import type { CallOptions, Transport } from "@connectrpc/connect";
import { type LookedUpOutcome, lookupOutcome } from "./lookup-outcome.js";
import type { PendingRequestIds } from "./pending-request-ids.js";

/**
 * What `lookupPendingOutcome` found: no pending request ID under the key
 * (`requestId` undefined: nothing is pending, or it expired), or the
 * pending ID and what the server says became of it.
 */
export type PendingOutcome<O extends DescMessage> =
  | { readonly requestId: undefined }
  | { readonly requestId: string; readonly outcome: LookedUpOutcome<O> };

/**
 * After a reload or a restart, asks the server what became of the operation
 * a client kept pending under `pendingKey` (the key of `withPendingKey`),
 * without sending the request: the pending request ID is read from
 * `pending`, the same backend the client was created with, and looked up
 * with `lookupOutcome` (the server must mount
 * `idempotency.v1.IdempotencyService`). The entry is left as it is: sending
 * the operation again still reuses its ID, and a definite answer clears it.
 *
 * ```ts
 * const found = await lookupPendingOutcome(transport, pending, PaymentService.method.createPayment, `cart-${cartId}`);
 * if (found.requestId !== undefined && found.outcome.state === "completed") {
 *   showReceipt(found.outcome.response);
 * }
 * ```
 */
export async function lookupPendingOutcome<I extends DescMessage, O extends DescMessage>(
  transport: Transport,
  pending: PendingRequestIds,
  method: DescMethodUnary<I, O>,
  pendingKey: string,
  options?: CallOptions,
): Promise<PendingOutcome<O>> {
  // The key the client recorded the operation under (see `withPendingKey`).
  const requestId = await pending.get(`${method.parent.typeName}/${method.name}@${pendingKey}`);
  if (requestId === undefined) {
    return { requestId: undefined };
  }
  return { requestId, outcome: await lookupOutcome(transport, method, requestId, options) };
}
