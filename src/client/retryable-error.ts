import { Code, type ConnectError } from "@connectrpc/connect";
import { ErrorReason } from "../errors/error-reason.js";
import { findErrorReason } from "../errors/idempotency-error.js";
import { replayedHeader } from "./idempotency-headers.js";

// Codes that say the call may not have run, or ran and its answer was lost,
// and that a later attempt may succeed.
const retryableCodes: ReadonlySet<Code> = new Set([Code.Unavailable, Code.DeadlineExceeded, Code.ResourceExhausted]);

// How Node.js, its HTTP/2 stack and undici (fetch) name a connection that broke
// under a call. connect-node reports them as Aborted (ECONNRESET) or Internal
// (HTTP/2 session and stream errors); fetch-based transports as Unknown.
const brokenConnectionErrors: ReadonlySet<string> = new Set([
  "ECONNRESET",
  "ECONNABORTED",
  "EPIPE",
  "ERR_HTTP2_GOAWAY_SESSION",
  "ERR_HTTP2_INVALID_SESSION",
  "ERR_HTTP2_SESSION_ERROR",
  "ERR_HTTP2_STREAM_CANCEL",
  "ERR_HTTP2_STREAM_ERROR",
  "ERR_STREAM_PREMATURE_CLOSE",
  "UND_ERR_CLOSED",
  "UND_ERR_SOCKET",
]);

// What browsers' fetch says when the network failed under a request: a
// TypeError without a code. Chromium "Failed to fetch" (and "network error"
// for a body cut off), Firefox "NetworkError when attempting to fetch
// resource.", Safari "Load failed". A TypeError of another kind, from a bug
// in the caller's code, is not a network failure and is not retried.
const fetchNetworkFailure = /fetch|network|load failed/i;

/**
 * Whether another attempt of a call that is safe to retry (it carries a
 * request ID, or its method has no side effects or is idempotent) may succeed
 * where this one failed.
 *
 * Retried: Unavailable, DeadlineExceeded (of one attempt; the caller's own
 * deadline and abort are checked separately), ResourceExhausted, Aborted with
 * reason REQUEST_IN_PROGRESS, and a broken connection: Unknown, Internal,
 * Aborted or Canceled caused by the network rather than sent by the server.
 * connect-node reports an HTTP/2 session that went away under a call as
 * Canceled; the caller's own cancellation never reaches this function. In a
 * browser, fetch reports a network failure as a TypeError without a code,
 * which Connect wraps as Unknown: retried too.
 *
 * Never retried either: an error that came with `idempotency-replayed: true`.
 * It is the stored answer of the first call with this request ID, and every
 * retry would get it again.
 *
 * Never retried: every other code, among them InvalidArgument,
 * FailedPrecondition (REQUEST_ID_REUSED), AlreadyExists, PermissionDenied,
 * Unauthenticated and NotFound, and RESPONSE_TOO_LARGE, whose answer a retry
 * cannot change.
 */
export function isRetryableError(error: ConnectError): boolean {
  if (error.metadata.get(replayedHeader) === "true") {
    return false;
  }
  const reason = findErrorReason(error);
  if (reason === ErrorReason.RESPONSE_TOO_LARGE) {
    return false;
  }
  if (error.code === Code.Aborted && reason === ErrorReason.REQUEST_IN_PROGRESS) {
    return true;
  }
  if (retryableCodes.has(error.code)) {
    return true;
  }
  return reason === undefined && isBrokenConnection(error);
}

function isBrokenConnection(error: ConnectError): boolean {
  switch (error.code) {
    case Code.Canceled:
      return true;
    case Code.Unknown:
      return isFetchNetworkFailure(error.cause) || causeCodes(error).some((code) => brokenConnectionErrors.has(code));
    case Code.Internal:
    case Code.Aborted:
      return causeCodes(error).some((code) => brokenConnectionErrors.has(code));
    default:
      return false;
  }
}

function causeCodes(error: ConnectError): string[] {
  const codes: string[] = [];
  const seen = new Set<unknown>();
  for (let cause: unknown = error.cause; cause instanceof Error && !seen.has(cause); cause = cause.cause) {
    seen.add(cause);
    if ("code" in cause && typeof cause.code === "string") {
      codes.push(cause.code);
    }
  }
  return codes;
}

function isFetchNetworkFailure(cause: unknown): boolean {
  return (
    cause instanceof TypeError &&
    !("code" in cause && cause.code !== undefined) &&
    fetchNetworkFailure.test(cause.message)
  );
}
