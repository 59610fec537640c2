import type { DescMethod } from "@bufbuild/protobuf";
import { Code, ConnectError } from "@connectrpc/connect";
import { findRetryDelayMs } from "../errors/idempotency-error.js";
import { backoffDelayMs } from "./backoff-delay.js";
import { outcomeUnknownError, readAnnouncedExpiry } from "./outcome-unknown-error.js";
import { isRetryableError } from "./retryable-error.js";
import type { RetryPolicy } from "./retry-policy.js";

/** One call that is safe to retry, for `callWithRetry`. */
export interface RetriedCall<T> {
  /** The method called, for `onRetry`. */
  readonly method: DescMethod;
  /** The request ID every attempt carries, for `onRetry`; undefined without one. */
  readonly requestId: string | undefined;
  /** The resolved policy for this call. */
  readonly policy: RetryPolicy;
  /** The caller's signal; no attempt starts and no wait continues once it aborts. */
  readonly signal: AbortSignal | undefined;
  /**
   * The caller's timeout for the whole call, in milliseconds, when the
   * attempts do not already share one signal that enforces it. Zero or less
   * means none, as in Connect's call options.
   */
  readonly timeoutMs: number | undefined;
  /**
   * Runs one attempt. `remainingMs` is what is left of the call's deadline,
   * to bound the attempt; undefined when the call has no deadline.
   */
  readonly attempt: (remainingMs: number | undefined) => Promise<T>;
}

/**
 * Runs the attempts of one call until one succeeds, the error is not
 * retryable (`isRetryableError`), `maxAttempts` is reached, the caller aborts,
 * or the next wait would end after the deadline. Then it throws the last
 * attempt's error, or Canceled when the caller aborted during a wait.
 *
 * The wait is the server's `google.rpc.RetryInfo` delay when the error carries
 * one (as REQUEST_IN_PROGRESS does), the policy's backoff otherwise.
 *
 * A retry never starts at or after the time until which the server said it
 * replays this request ID's outcome (`idempotency-expires`, the latest one
 * an attempt's error carried): from then on the same request ID could run
 * the call a second time. The call fails with UNKNOWN OUTCOME_UNKNOWN
 * instead. The time is the server's (its store's clock), compared with
 * `policy.clock.now()`: a client clock ahead of it stops early, one behind it
 * late by its skew.
 *
 * This is the one retry loop of connect-idempotency: generated clients and
 * `createRetryInterceptor` both run their calls through it.
 */
export async function callWithRetry<T>(call: RetriedCall<T>): Promise<T> {
  const { policy, signal } = call;
  const limit = minDefined(
    policy.deadlineMs,
    call.timeoutMs !== undefined && call.timeoutMs > 0 ? call.timeoutMs : undefined,
  );
  const deadline = limit === undefined ? undefined : policy.clock.now() + limit;
  let expiresAt: number | undefined;
  for (let attempt = 1; ; attempt++) {
    let error: ConnectError;
    try {
      return await call.attempt(
        deadline === undefined ? undefined : Math.max(1, Math.ceil(deadline - policy.clock.now())),
      );
    } catch (e) {
      error = ConnectError.from(e);
    }
    if (attempt >= policy.maxAttempts || signal?.aborted === true || !isRetryableError(error)) {
      throw error;
    }
    const delayMs = findRetryDelayMs(error) ?? backoffDelayMs(attempt, policy);
    if (deadline !== undefined && policy.clock.now() + delayMs >= deadline) {
      throw error;
    }
    expiresAt = readAnnouncedExpiry(error.metadata) ?? expiresAt;
    if (expiresAt !== undefined && policy.clock.now() + delayMs >= expiresAt) {
      throw outcomeUnknownError(call.requestId, expiresAt, error);
    }
    policy.onRetry?.({ method: call.method, attempt, error, delayMs, requestId: call.requestId });
    try {
      await policy.sleep(delayMs, signal);
    } catch (reason) {
      // The sleep rejects with the signal's reason: a DeadlineExceeded
      // ConnectError for Connect's own deadline, anything else is a cancel.
      throw ConnectError.from(reason, Code.Canceled);
    }
  }
}

function minDefined(a: number | undefined, b: number | undefined): number | undefined {
  return a === undefined ? b : b === undefined ? a : Math.min(a, b);
}
