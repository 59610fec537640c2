import type { DescMethod } from "@bufbuild/protobuf";
import { ConnectError } from "@connectrpc/connect";
import { ErrorReason } from "../errors/error-reason.js";
import { findErrorReason } from "../errors/idempotency-error.js";

/**
 * The error to give the caller for `error`: for REQUEST_ID_REUSED, the same
 * error (code, details, metadata, and the original as cause) with a message
 * that says what happened and what to do, since the server's message cannot
 * know that the client reused the ID on purpose; any other error as it is.
 */
export function explainReusedRequestId(
  error: ConnectError,
  method: DescMethod,
  requestId: string | undefined,
): ConnectError {
  if (findErrorReason(error) !== ErrorReason.REQUEST_ID_REUSED) {
    return error;
  }
  const id = requestId === undefined ? "the request ID" : `request ID ${requestId}`;
  const explained = new ConnectError(
    `${id} was first sent with other content to ${method.parent.typeName}/${method.name}, ` +
      "and that first request's outcome stands: nothing was done for this one. " +
      "If the change is meant as a new operation, send it with a new request ID " +
      `(server: ${error.rawMessage})`,
    error.code,
    error.metadata,
    undefined,
    error,
  );
  // The constructor takes only outgoing details; received ones are copied so
  // that `findErrorReason` reads the same reason.
  explained.details.push(...error.details);
  return explained;
}
