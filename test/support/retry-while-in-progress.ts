import { ConnectError } from "@connectrpc/connect";
import { ErrorReason } from "../../src/errors/error-reason.js";
import { findErrorReason } from "../../src/errors/idempotency-error.js";

/**
 * Calls again and again while the call fails with REQUEST_IN_PROGRESS (the
 * key is running elsewhere), as a client following RetryInfo would; returns
 * the first other answer and throws any other error.
 */
export async function retryWhileInProgress<T>(call: () => Promise<T>): Promise<T> {
  for (;;) {
    try {
      return await call();
    } catch (error) {
      if (!(error instanceof ConnectError) || findErrorReason(error) !== ErrorReason.REQUEST_IN_PROGRESS) {
        throw error;
      }
    }
  }
}
