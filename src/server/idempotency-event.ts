import type { Code } from "@connectrpc/connect";

/** What the interceptor decided for one call. */
export type IdempotencyEventType =
  /** The key was free; this call claimed it and runs the handler. */
  | "claimed"
  /** The handler finished and its outcome was stored. */
  | "completed"
  /** A duplicate got the stored outcome without the handler running. */
  | "replayed"
  /** A duplicate waited for an in-flight execution (see `waitedMs`, `waitResult`). */
  | "waited"
  /** A duplicate found the key still running after waiting: REQUEST_IN_PROGRESS. */
  | "conflict"
  /** A duplicate had another payload: REQUEST_ID_REUSED. */
  | "mismatch"
  /** The handler failed with a released code; the key was freed for a retry. */
  | "released"
  /** This call took over a claim whose lease had expired (its process died). */
  | "takeover"
  /** This call claimed a key whose completed record had expired. */
  | "expired"
  /** The store failed (see `operation`, `error`). */
  | "store_error";

/** A store operation, as named in `store_error` events. */
export type StoreOperation = "claim" | "complete" | "release" | "renew" | "get";

/**
 * One decision of the interceptor, for logs and metrics. Keys never appear
 * in clear: `keyHash` is a SHA-256 over scope, method and key.
 */
export interface IdempotencyEvent {
  /** The decision. */
  readonly type: IdempotencyEventType;
  /** The fully qualified method, such as `demo.v1.PaymentService/CreatePayment`. */
  readonly method: string;
  /** Hex SHA-256 of scope, method and request ID (first 32 characters). */
  readonly keyHash: string;
  /** When the decision was made, by the interceptor's clock. */
  readonly at: number;
  /** Milliseconds this call spent in store operations so far. */
  readonly storeMs: number;
  /** For `waited`: milliseconds spent waiting for the in-flight execution. */
  readonly waitedMs?: number;
  /** For `waited`: what the wait ended with. */
  readonly waitResult?: "outcome" | "released" | "timeout";
  /** For `replayed`, `completed` and `released`: the error code, undefined for success. */
  readonly code?: Code;
  /** For `store_error`: the operation that failed. */
  readonly operation?: StoreOperation;
  /** For `store_error`: the error the store raised. */
  readonly error?: unknown;
  /** For `store_error`: whether the operation is retried (completion) or the call fails. */
  readonly willRetry?: boolean;
}
