import type { Code } from "@connectrpc/connect";

/**
 * What the interceptor decided for one call. A call that claims a key
 * reports exactly one of `claimed`, `takeover` and `expired`.
 */
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
  /**
   * A duplicate with the same payload found a tombstone (the record's replay
   * window had ended): REQUEST_ID_EXPIRED, and the handler did not run.
   */
  | "tombstoned"
  /** The handler failed with a released code or a `releaseOnError` mark; the key was freed for a fresh run. */
  | "released"
  /**
   * The handler failed with an indefinite error (it may have acted, see
   * `code`): the record and its phases stay, its lease ended, and the next
   * call with the same payload takes it over.
   */
  | "interrupted"
  /**
   * This call took over a claim that was interrupted, or whose lease and
   * grace period ran out (its process died or stalled), and runs the handler
   * (see `attempt`).
   */
  | "takeover"
  /** This call claimed a key whose completed record had expired, and runs the handler. */
  | "expired"
  /**
   * The outcome was larger than `maxStoredBytes` (see `responseBytes`): the
   * caller got it, but the store keeps a RESPONSE_TOO_LARGE error instead.
   */
  | "too_large"
  /**
   * This execution lost its claim before its outcome was stored: its lease
   * ran out (the process stalled or the store was unreachable for longer
   * than the lease) and another call took the key over. See `operation`.
   */
  | "claim_lost"
  /**
   * The outcome could not be written and did not fit in memory until it can
   * be (`maxPendingCompletions`, `maxPendingBytes`; see `responseBytes`): the
   * caller got it, but its claim is no longer renewed, so a retry takes the
   * key over after the lease and grace, as a new attempt.
   */
  | "completion_dropped"
  /**
   * The scope function threw or returned no string (see `error`): the call
   * failed with SCOPE_FAILED or SCOPE_INVALID, or the ConnectError the
   * scope function threw. `keyHash` is empty, since there is no scope.
   */
  | "scope_error"
  /** The store failed (see `operation`, `error`, `willRetry`). */
  | "store_error";

/** A store operation, as named in `store_error` events. */
export type StoreOperation =
  | "claim"
  | "complete"
  | "release"
  | "interrupt"
  | "renew"
  | "get"
  /** A handler's `commit`: its writes and the completion in one transaction. */
  | "commit"
  /** A handler's `phase` reading a recorded step. */
  | "get_phase"
  /** A handler's `phase` recording a step. */
  | "record_phase";

/** One store operation of a call, for latency metrics. */
export interface StoreCall {
  /** The operation. */
  readonly operation: StoreOperation;
  /** How long it took, in milliseconds (wall time). */
  readonly ms: number;
  /** True when the store rejected. */
  readonly failed: boolean;
}

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
  /** When the decision was made, in milliseconds since the epoch (this process's clock). */
  readonly at: number;
  /** Milliseconds this call spent in store operations so far. */
  readonly storeMs: number;
  /**
   * The store operations of this call since its previous event, so that
   * each operation is reported exactly once.
   */
  readonly storeCalls?: readonly StoreCall[];
  /** For `waited`: milliseconds spent waiting for the in-flight execution. */
  readonly waitedMs?: number;
  /**
   * For `replayed`: true when the outcome came from this process's replay
   * cache (`replayCache`) without a store call.
   */
  readonly fromCache?: boolean;
  /** For `waited`: what the wait ended with. */
  readonly waitResult?: "outcome" | "released" | "timeout";
  /** For `claimed`, `takeover` and `expired`: which execution of the key this is (1 for the first). */
  readonly attempt?: number;
  /** For `replayed`, `completed`, `released` and `interrupted`: the error code, undefined for success. */
  readonly code?: Code;
  /** For `too_large` and `completion_dropped`: the size of the encoded outcome in bytes. */
  readonly responseBytes?: number;
  /** For `store_error` and `claim_lost`: the operation that failed or found the claim gone. */
  readonly operation?: StoreOperation;
  /** For `store_error`: the error the store raised; for `scope_error`, what the scope function threw or returned. */
  readonly error?: unknown;
  /** For `store_error`: whether the operation is retried (completion, interruption, renewal) or the call fails. */
  readonly willRetry?: boolean;
}
