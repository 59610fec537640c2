import { Code, ConnectError } from "@connectrpc/connect";

/**
 * What happens to a request ID when its handler fails: `store` keeps the
 * error, so that a retry gets the same error without the handler running;
 * `release` frees the key, so that a retry runs the handler again.
 */
export type ErrorDisposition = "store" | "release";

/**
 * The codes whose errors are stored by default: the handler decided, and
 * running it again with the same payload would decide the same (or has
 * partly happened already, for Internal, Unknown and DataLoss).
 */
export const defaultStoredCodes: readonly Code[] = [
  Code.InvalidArgument,
  Code.NotFound,
  Code.AlreadyExists,
  Code.PermissionDenied,
  Code.FailedPrecondition,
  Code.OutOfRange,
  Code.Unimplemented,
  Code.Unauthenticated,
  Code.Internal,
  Code.Unknown,
  Code.DataLoss,
];

/**
 * The codes whose errors release the key by default: transient conditions
 * where the handler most likely had no effect, and a retry should run it.
 */
export const defaultReleasedCodes: readonly Code[] = [
  Code.Unavailable,
  Code.ResourceExhausted,
  Code.Aborted,
  Code.DeadlineExceeded,
  Code.Canceled,
];

/**
 * The codes that release the key, from the interceptor options. Either set
 * alone decides every code: `storedCodes` alone releases all other codes,
 * `releasedCodes` alone stores all other codes. With both, they must not
 * overlap, and a code in neither is stored.
 */
export function resolveReleasedCodes(
  storedCodes: readonly Code[] | undefined,
  releasedCodes: readonly Code[] | undefined,
): ReadonlySet<Code> {
  if (storedCodes === undefined && releasedCodes === undefined) {
    return new Set(defaultReleasedCodes);
  }
  if (releasedCodes === undefined) {
    const stored = new Set(storedCodes);
    return new Set(allErrorCodes.filter((code) => !stored.has(code)));
  }
  const overlap = releasedCodes.filter((code) => storedCodes?.includes(code));
  if (overlap.length > 0) {
    throw new Error(
      `idempotency interceptor: codes ${overlap.map((code) => Code[code]).join(", ")} are in both storedCodes and releasedCodes`,
    );
  }
  return new Set(releasedCodes);
}

const allErrorCodes: readonly Code[] = [...defaultStoredCodes, ...defaultReleasedCodes];

// A WeakMap rather than a property on the error: the error stays untouched,
// and a marked error can be frozen or shared.
const explicit = new WeakMap<object, ErrorDisposition>();

/**
 * Marks an error so that the interceptor frees the request ID when the
 * handler throws it, whatever its code: a retry runs the handler again.
 * Use it when the handler knows that it had no effect. Returns the error,
 * for `throw releaseOnError(new ConnectError(...))`.
 */
export function releaseOnError<E extends object>(error: E): E {
  explicit.set(error, "release");
  return error;
}

/**
 * Marks an error so that the interceptor stores it when the handler throws
 * it, whatever its code: retries get the same error without the handler
 * running. Use it when the handler may have had effects, for example an
 * Unavailable error from a downstream call after money already moved.
 * Returns the error.
 */
export function storeOnError<E extends object>(error: E): E {
  explicit.set(error, "store");
  return error;
}

/**
 * Decides what to do with the request ID after the handler threw `thrown`,
 * whose ConnectError as the client receives it is `error`: an explicit mark
 * on the thrown value wins, then the code.
 */
export function errorDisposition(
  thrown: unknown,
  error: ConnectError,
  releasedCodes: ReadonlySet<Code>,
): ErrorDisposition {
  const mark = typeof thrown === "object" && thrown !== null ? explicit.get(thrown) : undefined;
  if (mark !== undefined) {
    return mark;
  }
  return releasedCodes.has(error.code) ? "release" : "store";
}

/**
 * The ConnectError a client receives for a value a handler threw, as
 * connect-node reports it: a ConnectError as is, anything else as Internal
 * "internal error" - unless the call was aborted (client gone, deadline
 * passed), where the abort reason decides (Canceled, DeadlineExceeded) so
 * that the key is released rather than stored as an internal error.
 */
export function errorAsClientSees(thrown: unknown, signal: AbortSignal): ConnectError {
  if (thrown instanceof ConnectError) {
    return thrown;
  }
  if (signal.aborted) {
    return ConnectError.from(signal.reason, Code.Canceled);
  }
  return new ConnectError("internal error", Code.Internal, undefined, undefined, thrown);
}
