import { Code, ConnectError } from "@connectrpc/connect";
import { internalError } from "./internal-error.js";

/**
 * What happens to a request ID when its handler fails after it started:
 *
 * - `store`: the handler decided; the error is stored and every retry gets
 *   it without the handler running;
 * - `interrupt`: the outcome is indefinite (the handler may have acted): the
 *   record and its recorded phases stay, its lease ends at once, and the
 *   next call with the same payload takes it over (`attempt` + 1,
 *   `takeover: true`), so that phases run once across attempts;
 * - `release`: nothing happened: the record and its phases are deleted, and
 *   a retry runs afresh.
 */
export type ErrorDisposition = "store" | "interrupt" | "release";

/**
 * The codes whose errors are stored by default: the handler decided, and
 * running it again with the same payload would decide the same (or has
 * partly happened already, for Internal, Unknown and DataLoss).
 */
export const defaultStoredCodes: readonly Code[] = [
  Code.InvalidArgument,
  Code.NotFound,
  Code.AlreadyExists,
  Code.FailedPrecondition,
  Code.OutOfRange,
  Code.Unimplemented,
  Code.Internal,
  Code.Unknown,
  Code.DataLoss,
];

/**
 * The codes whose errors are indefinite by default: transient conditions (a
 * downstream timeout, an overloaded dependency, a lost race, the call's own
 * deadline or cancellation) that say nothing about whether the handler's
 * effects happened. A retry must be able to find out, so the key is kept.
 */
export const defaultIndefiniteCodes: readonly Code[] = [
  Code.Unavailable,
  Code.ResourceExhausted,
  Code.Aborted,
  Code.DeadlineExceeded,
  Code.Canceled,
];

/**
 * The codes whose errors release the key by default: refusals of who the
 * caller is, which have no effect. Stored, they would let a caller without
 * credentials (or an auth interceptor placed after this one) poison the
 * rightful caller's request ID for the whole retention. For every other
 * error, only the handler knows that it had no effect; it says so with
 * `releaseOnError`.
 */
export const defaultReleasedCodes: readonly Code[] = [Code.Unauthenticated, Code.PermissionDenied];

/** The three lists of the interceptor options, each of which may be absent. */
export interface CodeDispositionLists {
  readonly storedCodes?: readonly Code[];
  readonly indefiniteCodes?: readonly Code[];
  readonly releasedCodes?: readonly Code[];
}

/**
 * What each code's errors do, from the interceptor options: a code named in
 * one of the lists gets that list's disposition, every other code its
 * default (see `defaultStoredCodes`, `defaultIndefiniteCodes`,
 * `defaultReleasedCodes`). A code in
 * two lists is refused.
 */
export function resolveCodeDispositions(lists: CodeDispositionLists): ReadonlyMap<Code, ErrorDisposition> {
  const dispositions = new Map<Code, ErrorDisposition>();
  for (const code of defaultStoredCodes) dispositions.set(code, "store");
  for (const code of defaultIndefiniteCodes) dispositions.set(code, "interrupt");
  for (const code of defaultReleasedCodes) dispositions.set(code, "release");
  const named = new Map<Code, string>();
  const apply = (list: readonly Code[] | undefined, name: string, disposition: ErrorDisposition) => {
    for (const code of list ?? []) {
      if (Code[code] === undefined) {
        throw new Error(`createIdempotencyInterceptor: ${name} holds ${String(code)}, which is not an error code`);
      }
      const earlier = named.get(code);
      if (earlier !== undefined && earlier !== name) {
        throw new Error(
          `createIdempotencyInterceptor: code ${Code[code]} is in both ${earlier} and ${name}; name each code in one list`,
        );
      }
      named.set(code, name);
      dispositions.set(code, disposition);
    }
  };
  apply(lists.storedCodes, "storedCodes", "store");
  apply(lists.indefiniteCodes, "indefiniteCodes", "interrupt");
  apply(lists.releasedCodes, "releasedCodes", "release");
  return dispositions;
}

// A WeakMap rather than a property on the error: the error stays untouched,
// and a marked error can be frozen or shared.
const explicit = new WeakMap<object, ErrorDisposition>();

/**
 * Marks an error so that the interceptor frees the request ID when the
 * handler throws it, whatever its code: the record and its recorded phases
 * are deleted, and a retry runs the handler afresh. Use it only when the
 * handler knows that it had no effect. Returns the error, for
 * `throw releaseOnError(new ConnectError(...))`.
 */
export function releaseOnError<E extends object>(error: E): E {
  explicit.set(error, "release");
  return error;
}

/**
 * Marks an error as indefinite, whatever its code: the record and its
 * recorded phases stay, and the next call with the same payload takes it
 * over at once as a new attempt. `commit` marks what its function throws
 * this way (unless already marked): its writes rolled back, but steps before
 * the commit may have acted. Returns the error.
 */
export function interruptOnError<E extends object>(error: E): E {
  explicit.set(error, "interrupt");
  return error;
}

/** True when the error carries a mark of `releaseOnError`, `storeOnError` or `interruptOnError`. */
export function hasDispositionMark(error: unknown): boolean {
  return typeof error === "object" && error !== null && explicit.has(error);
}

/**
 * Marks an error so that the interceptor stores it when the handler throws
 * it, whatever its code: retries get the same error without the handler
 * running. Use it when the handler decided, for example an Unavailable error
 * it wants every retry to see. Returns the error.
 */
export function storeOnError<E extends object>(error: E): E {
  explicit.set(error, "store");
  return error;
}

/**
 * Decides what to do with the request ID after the handler threw `thrown`,
 * whose ConnectError as the client receives it is `error`. An explicit mark
 * on the thrown value wins; then an error while the call was aborted (the
 * client left, the deadline passed, the stream was reset) is indefinite,
 * since it reports the transport rather than the handler's decision; then
 * the code decides.
 */
export function errorDisposition(
  thrown: unknown,
  error: ConnectError,
  dispositions: ReadonlyMap<Code, ErrorDisposition>,
  signal: AbortSignal,
): ErrorDisposition {
  const mark = typeof thrown === "object" && thrown !== null ? explicit.get(thrown) : undefined;
  if (mark !== undefined) {
    return mark;
  }
  if (signal.aborted) {
    return "interrupt";
  }
  return dispositions.get(error.code) ?? "store";
}

/**
 * The ConnectError a client receives for a value a handler threw, as
 * connect-node reports it: a ConnectError as is, anything else as Internal
 * "internal error" - unless the call was aborted (client gone, deadline
 * passed), where the abort reason decides (Canceled, DeadlineExceeded).
 */
export function errorAsClientSees(thrown: unknown, signal: AbortSignal): ConnectError {
  if (thrown instanceof ConnectError) {
    return thrown;
  }
  if (signal.aborted) {
    return ConnectError.from(signal.reason, Code.Canceled);
  }
  return internalError(thrown);
}
