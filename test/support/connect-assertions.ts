import { ConnectError } from "@connectrpc/connect";
import { findErrorReason } from "../../src/errors/idempotency-error.js";

/**
 * Awaits a call that must fail and returns its ConnectError; throws when it
 * succeeds or fails with something else.
 */
export async function expectConnectError(call: Promise<unknown>): Promise<ConnectError> {
  try {
    await call;
  } catch (error) {
    if (error instanceof ConnectError) {
      return error;
    }
    throw new Error(`expected a ConnectError, got ${String(error)}`, { cause: error });
  }
  throw new Error("expected the call to fail, but it succeeded");
}

/** The code, ErrorInfo reason and message of an error, for one `toEqual`/`toMatchObject`. */
export function describeError(error: ConnectError): { code: number; reason: string | undefined; message: string } {
  return { code: error.code, reason: findErrorReason(error), message: error.rawMessage };
}

/** The headers and trailers a client saw for one call, for `callOptions`. */
export interface SeenMetadata {
  header: Headers;
  trailer: Headers;
}

/** Call options that capture response headers and trailers into `seen`. */
export function captureMetadata(): {
  seen: SeenMetadata;
  options: { onHeader(h: Headers): void; onTrailer(t: Headers): void };
} {
  const seen: SeenMetadata = { header: new Headers(), trailer: new Headers() };
  return {
    seen,
    options: {
      onHeader: (h) => (seen.header = h),
      onTrailer: (t) => (seen.trailer = t),
    },
  };
}
