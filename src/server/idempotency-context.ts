import { createContextKey } from "@connectrpc/connect";

/**
 * What a handler knows about the deduplicated call it runs.
 */
export interface IdempotencyContextValue {
  /** The request ID in canonical form (UUIDs in lowercase). */
  readonly key: string;
  /** The scope (tenant or principal) the key belongs to. */
  readonly scope: string;
  /** The fully qualified method, such as `demo.v1.PaymentService/CreatePayment`. */
  readonly method: string;
  /**
   * True when an earlier execution with this request ID started but never
   * finished (its process died and its lease expired): side effects of that
   * attempt may exist, and the handler should look for them before acting.
   */
  readonly takeover: boolean;
}

/**
 * The context key through which a handler sees its idempotency state:
 * `ctx.values.get(idempotencyContext)`. Undefined for calls that are not
 * deduplicated (no request ID field, an empty request ID, streaming calls).
 * For writes that commit together with the request ID, recovery points and
 * derived keys for downstream calls, see `atomicEffects(ctx, store)`.
 */
export const idempotencyContext = createContextKey<IdempotencyContextValue | undefined>(undefined, {
  description: "connect-idempotency: the deduplicated call",
});

/** Builds the context value of one claimed execution; the only place that does. */
export function createIdempotencyContextValue(init: IdempotencyContextValue): IdempotencyContextValue {
  return { key: init.key, scope: init.scope, method: init.method, takeover: init.takeover };
}
