/**
 * The `google.rpc.ErrorInfo` reasons connect-idempotency sends, for programs
 * to match on. The domain of every one is `ERROR_DOMAIN`. Each reason always
 * comes with the one Connect code its doc names (`errorReasonCode`).
 */
export const ErrorReason = {
  /** The method requires a request ID and the call had none. INVALID_ARGUMENT. */
  REQUEST_ID_REQUIRED: "REQUEST_ID_REQUIRED",
  /** The request ID does not have the method's format. INVALID_ARGUMENT. */
  REQUEST_ID_INVALID: "REQUEST_ID_INVALID",
  /** The request ID was used before with a different payload. FAILED_PRECONDITION. */
  REQUEST_ID_REUSED: "REQUEST_ID_REUSED",
  /**
   * The request ID was used for this payload, but so long ago that its
   * outcome is no longer kept: the record's replay window has ended, and a
   * tombstone keeps the ID taken so that the call does not run again.
   * FAILED_PRECONDITION, with `completed_at` (RFC 3339), `original_code`
   * (the numeric gRPC code the first call answered with, 0 for success) and
   * `first_executed_at` in the ErrorInfo metadata. Not retried: the answer
   * cannot change until the tombstone expires.
   */
  REQUEST_ID_EXPIRED: "REQUEST_ID_EXPIRED",
  /** The first call with this request ID is still running. ABORTED, with RetryInfo. */
  REQUEST_IN_PROGRESS: "REQUEST_IN_PROGRESS",
  /** The store could not claim the key; the handler did not run. UNAVAILABLE. */
  STORE_UNAVAILABLE: "STORE_UNAVAILABLE",
  /**
   * The stored record of this request ID is damaged (its checksum does not
   * match, or the database reports a malformed page): its answer is not
   * replayed and the request does not run again, since it may have run
   * already. DATA_LOSS, the code for unrecoverable data loss or corruption;
   * not retried, since a retry meets the same record until an operator
   * evicts it (`connect-idempotency keys corrupt`, `keys evict --corrupt`).
   */
  STORE_CORRUPT: "STORE_CORRUPT",
  /** The response is larger than the store keeps. FAILED_PRECONDITION. */
  RESPONSE_TOO_LARGE: "RESPONSE_TOO_LARGE",
  /**
   * A duplicate of a completed call of a method in DUPLICATE_MODE_REJECT:
   * it ran once, and its response is not kept. ALREADY_EXISTS, with
   * `first_executed_at`, `completed_at` (when known) and, when the handler
   * named one, `resource_name` in the ErrorInfo metadata.
   */
  REQUEST_ID_ALREADY_EXECUTED: "REQUEST_ID_ALREADY_EXECUTED",
  /**
   * Sent by clients, not servers: a retry would start after the time until
   * which the server said it replays this request ID's outcome
   * (`idempotency-expires`), so the client stopped. The call may or may not
   * have run. UNKNOWN.
   */
  OUTCOME_UNKNOWN: "OUTCOME_UNKNOWN",
  /**
   * The interceptor's scope function threw something other than a
   * ConnectError (a ConnectError reaches the client as it is). INTERNAL.
   */
  SCOPE_FAILED: "SCOPE_FAILED",
  /**
   * The interceptor's scope function returned no string, typically because
   * it reads a context value that an interceptor placed after this one sets.
   * INTERNAL.
   */
  SCOPE_INVALID: "SCOPE_INVALID",
} as const;

/** One of the reasons in `ErrorReason`. */
export type ErrorReason = (typeof ErrorReason)[keyof typeof ErrorReason];

/** The `google.rpc.ErrorInfo` domain of every error connect-idempotency sends. */
export const ERROR_DOMAIN = "connect-idempotency";
