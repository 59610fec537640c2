import { Code, ConnectError } from "@connectrpc/connect";

/**
 * connect's answer for a failure that is not a ConnectError: Internal
 * "internal error", with the failure as its cause (never sent). The one
 * wrapper for a handler's non-Connect error and for an outcome that cannot be
 * encoded.
 */
export function internalError(cause: unknown): ConnectError {
  return new ConnectError("internal error", Code.Internal, undefined, undefined, cause);
}
