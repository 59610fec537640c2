import { ErrorReason } from "../errors/error-reason.js";
import { createIdempotencyError } from "../errors/idempotency-error.js";
import type { StoredForm } from "./atomic-effects.js";
import { emit } from "./call-events.js";
import type { DedupeCall } from "./dedupe-call.js";
import { internalError } from "./internal-error.js";
import { encodeStoredOutcome, type StoredOutcomeValue } from "./stored-outcome.js";

/**
 * Encodes an outcome for the store. A response or error that cannot be
 * encoded (a handler that returned a malformed message, a detail that does
 * not match its type) is stored as the error connect reports for it, so
 * that the claim always ends and a retry never runs the handler again.
 */
export function encodeOutcome(outcome: () => StoredOutcomeValue): StoredForm {
  try {
    const value = outcome();
    return { bytes: encodeStoredOutcome(value), code: value.kind === "error" ? value.error.code : undefined };
  } catch (cause) {
    const error = internalError(cause);
    return { bytes: encodeStoredOutcome({ kind: "error", error }), code: error.code };
  }
}

/**
 * What the store keeps for an encoded outcome: the outcome itself, or when
 * it is larger than `maxStoredBytes` a RESPONSE_TOO_LARGE error, so that a
 * retry learns that the call already ran instead of running it again.
 */
export function storedForm(call: DedupeCall, encoded: StoredForm): StoredForm {
  const { maxStoredBytes } = call.settings;
  if (encoded.bytes.byteLength <= maxStoredBytes) {
    return encoded;
  }
  emit(call, "too_large", { responseBytes: encoded.bytes.byteLength });
  const tooLarge = createIdempotencyError(
    ErrorReason.RESPONSE_TOO_LARGE,
    `the request with this request ID already ran, but its outcome (${encoded.bytes.byteLength} bytes) is larger ` +
      `than the idempotency store keeps (${maxStoredBytes} bytes) and cannot be replayed; ` +
      "it was not run again",
    {
      metadata: {
        outcome_bytes: String(encoded.bytes.byteLength),
        max_stored_bytes: String(maxStoredBytes),
      },
    },
  );
  return { bytes: encodeStoredOutcome({ kind: "error", error: tooLarge }), code: tooLarge.code };
}
