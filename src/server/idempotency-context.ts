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
   * Which execution under this request ID this is: 1 for the first, one
   * more for every later one (after a crash, a stall past the lease, or an
   * indefinite error). A release (`releaseOnError`) or an expired record
   * starts again at 1.
   */
  readonly attempt: number;
  /**
   * True when an earlier execution under this request ID may have acted (it
   * crashed, stalled past its lease, or failed with an indefinite error):
   * its side effects may exist, and the handler should look for them before
   * acting. Recorded phases (`atomicEffects(...).phase`) return what the
   * earlier execution recorded.
   */
  readonly takeover: boolean;
  /**
   * Aborts when this execution loses its claim (another execution took the
   * key over after this one's lease ran out): whatever it does from then on
   * is not stored, and its caller gets the successor's outcome. Pass it to
   * downstream calls to stop work nobody will use.
   */
  readonly signal: AbortSignal;
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

/**
 * Builds the context value of one claimed execution; the only place that
 * does. Its `signal` is `lostSignal.signal`, read when the handler reads it,
 * so that an execution whose handler never looks builds no AbortSignal.
 */
export function createIdempotencyContextValue(
  init: Omit<IdempotencyContextValue, "signal"> & { readonly lostSignal: { readonly signal: AbortSignal } },
): IdempotencyContextValue {
  const { lostSignal } = init;
  return {
    key: init.key,
    scope: init.scope,
    method: init.method,
    attempt: init.attempt,
    takeover: init.takeover,
    get signal() {
      return lostSignal.signal;
    },
  };
}
