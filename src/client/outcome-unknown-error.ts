import type { ConnectError } from "@connectrpc/connect";
import { ErrorReason } from "../errors/error-reason.js";
import { createIdempotencyError } from "../errors/idempotency-error.js";
import { expiresHeader } from "./idempotency-headers.js";

/**
 * Until when the server said it replays this request ID's outcome
 * (`idempotency-expires` on the error's headers), in milliseconds since the
 * epoch; undefined when it did not say.
 */
export function readAnnouncedExpiry(headers: Headers): number | undefined {
  const text = headers.get(expiresHeader);
  const at = text === null ? Number.NaN : Date.parse(text);
  return Number.isNaN(at) ? undefined : at;
}

/**
 * UNKNOWN OUTCOME_UNKNOWN: the next attempt of a call would start after the
 * time until which the server replays its outcome, where the same request
 * ID could run the call a second time. The client stops instead; the call
 * may or may not have run. `last` is the last attempt's error, kept as the
 * cause.
 */
export function outcomeUnknownError(
  requestId: string | undefined,
  expiresAt: number,
  last: ConnectError,
): ConnectError {
  const at = new Date(expiresAt).toISOString();
  return createIdempotencyError(
    ErrorReason.OUTCOME_UNKNOWN,
    `the server replays the outcome of ${requestId === undefined ? "this call" : `request ID ${requestId}`} only until ` +
      `${at}, and a retry after that could run it a second time, so the client stopped retrying; ` +
      `whether it ran is unknown (the last attempt failed with: ${last.message}). Check for its effect before sending it anew`,
    { metadata: { expires_at: at, ...(requestId === undefined ? {} : { request_id: requestId }) }, cause: last },
  );
}
