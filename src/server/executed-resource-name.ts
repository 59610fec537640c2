import { type ContextValues, createContextKey } from "@connectrpc/connect";

/** The resource name a handler chose for its execution; one box per claimed execution. */
export interface ExecutedResourceBox {
  name: string;
}

/** Where a claimed execution keeps the resource name its handler sets. */
export const executedResourceKey = createContextKey<ExecutedResourceBox | undefined>(undefined, {
  description: "connect-idempotency: the resource name of the execution",
});

/**
 * Names the resource this execution created, such as the payment's
 * `payments/pay_123`. For a method in DUPLICATE_MODE_REJECT, a duplicate of
 * the completed call gets it in the ErrorInfo metadata of its ALREADY_EXISTS
 * error (`resource_name`), so that the client can find what the first call
 * made without the server keeping the response. Does nothing for a call that
 * is not deduplicated; the last name set before the handler returns counts.
 *
 * ```ts
 * async createPayment(req, ctx) {
 *   const payment = await payments.create(req);
 *   setExecutedResourceName(ctx, `payments/${payment.id}`);
 *   return { payment };
 * }
 * ```
 */
export function setExecutedResourceName(ctx: { readonly values: ContextValues }, name: string): void {
  const box = ctx.values.get(executedResourceKey);
  if (box !== undefined) {
    box.name = name;
  }
}
