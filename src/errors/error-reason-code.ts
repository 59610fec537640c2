import { Code } from "@connectrpc/connect";
import { ErrorReason } from "./error-reason.js";

/**
 * The Connect code of each `ErrorReason`: a reason always comes with the same
 * code, so `createIdempotencyError` takes the code from here.
 */
export const errorReasonCode: { readonly [R in ErrorReason]: Code } = {
  [ErrorReason.REQUEST_ID_REQUIRED]: Code.InvalidArgument,
  [ErrorReason.REQUEST_ID_INVALID]: Code.InvalidArgument,
  [ErrorReason.REQUEST_ID_REUSED]: Code.FailedPrecondition,
  [ErrorReason.REQUEST_ID_EXPIRED]: Code.FailedPrecondition,
  [ErrorReason.REQUEST_IN_PROGRESS]: Code.Aborted,
  [ErrorReason.STORE_UNAVAILABLE]: Code.Unavailable,
  [ErrorReason.STORE_CORRUPT]: Code.DataLoss,
  [ErrorReason.RESPONSE_TOO_LARGE]: Code.FailedPrecondition,
  [ErrorReason.REQUEST_ID_ALREADY_EXECUTED]: Code.AlreadyExists,
  [ErrorReason.OUTCOME_UNKNOWN]: Code.Unknown,
  [ErrorReason.SCOPE_FAILED]: Code.Internal,
  [ErrorReason.SCOPE_INVALID]: Code.Internal,
};
