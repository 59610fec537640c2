import type { ConnectError } from "@connectrpc/connect";
import { ErrorReason } from "../errors/error-reason.js";
import { createIdempotencyError } from "../errors/idempotency-error.js";
import { emit } from "./call-events.js";
import { isoTime } from "./iso-time.js";
import { expiresHeader } from "./protocol-headers.js";
import type { DedupeCall } from "./dedupe-call.js";
import type { IdempotencyRecord } from "../store/idempotency-store.js";

// What REQUEST_IN_PROGRESS suggests in its RetryInfo.
const inProgressRetryDelayMs = 1_000;

/** FAILED_PRECONDITION REQUEST_ID_REUSED: the key holds another payload's record. */
export function requestIdReused(call: DedupeCall): ConnectError {
  emit(call, "mismatch");
  return createIdempotencyError(
    ErrorReason.REQUEST_ID_REUSED,
    call.naturalKey
      ? `the key of this request (fields ${call.fieldName}) was already used for a request with different content; ` +
          "a new request needs a new key"
      : `the request ID in field ${call.fieldName} was already used for a request with different content; ` +
          "use a new request ID for a new request",
    { metadata: { field: call.fieldName } },
  );
}

/**
 * FAILED_PRECONDITION REQUEST_ID_EXPIRED: the key holds this payload's
 * tombstone, a completed record past its replay window. Its outcome is gone,
 * so it can be neither replayed nor, without running the call twice, run
 * again. Times are the store's clock.
 */
export function requestIdExpired(call: DedupeCall, record: IdempotencyRecord): ConnectError {
  emit(call, "tombstoned");
  const completedAt = isoTime(record.updatedAt);
  const what = call.naturalKey
    ? `the key of this request (fields ${call.fieldName})`
    : `the request ID in field ${call.fieldName}`;
  return createIdempotencyError(
    ErrorReason.REQUEST_ID_EXPIRED,
    `a request with ${what} completed at ${completedAt}, longer ago than its outcome is kept, so it is neither ` +
      "answered again nor run again; a new request needs a new request ID",
    {
      metadata: {
        field: call.fieldName,
        completed_at: completedAt,
        original_code: String(record.outcomeCode ?? 0),
        first_executed_at: isoTime(record.createdAt),
      },
    },
  );
}

/**
 * ABORTED REQUEST_IN_PROGRESS: another execution holds the key and has no
 * outcome yet. `message` says whose. `expiresAt` (the store's clock), when
 * known, is sent as `idempotency-expires`: until then the running claim
 * holds the key even if it never completes, so a retry before it cannot run
 * the call a second time.
 */
export function requestInProgress(message: string, expiresAt?: number): ConnectError {
  const error = createIdempotencyError(ErrorReason.REQUEST_IN_PROGRESS, message, {
    retryDelayMs: inProgressRetryDelayMs,
  });
  if (expiresAt !== undefined) {
    error.metadata.set(expiresHeader, isoTime(expiresAt));
  }
  return error;
}

/**
 * UNAVAILABLE STORE_UNAVAILABLE for the caller of an execution that ran but
 * whose outcome the store could not record while the claim was known to be
 * held: its retry gets the outcome the store ends up holding.
 */
export function outcomeNotRecorded(): ConnectError {
  return createIdempotencyError(
    ErrorReason.STORE_UNAVAILABLE,
    "the request ran, but the idempotency store could not record its outcome in time, so this server cannot vouch " +
      "for it; retry with the same request ID to get the outcome the store holds",
  );
}

/** UNAVAILABLE STORE_UNAVAILABLE: the key could not be claimed, so nothing ran. */
export function storeUnavailable(cause: unknown): ConnectError {
  return createIdempotencyError(
    ErrorReason.STORE_UNAVAILABLE,
    "the idempotency store is unavailable, so the request did not run; retry later",
    { cause },
  );
}

/**
 * DATA_LOSS STORE_CORRUPT: the stored record of the key is damaged, so it is
 * neither replayed nor run again (see `StoreCorruptError`).
 */
export function storeCorrupt(cause: unknown): ConnectError {
  return createIdempotencyError(
    ErrorReason.STORE_CORRUPT,
    "the stored record of this request ID is damaged, so its earlier answer is not replayed and the request did not " +
      "run again (it may have run before); ask the operator to check it with `connect-idempotency keys corrupt`",
    { cause },
  );
}
