import { create } from "@bufbuild/protobuf";
import { type Duration, DurationSchema } from "@bufbuild/protobuf/wkt";
import { ConnectError } from "@connectrpc/connect";
import { ErrorInfoSchema, RetryInfoSchema } from "../../gen/google/rpc/error_details_pb.js";
import { ERROR_DOMAIN, type ErrorReason } from "./error-reason.js";
import { errorReasonCode } from "./error-reason-code.js";

/**
 * Extra details of an idempotency error.
 *
 * @private Internal code, does not follow semantic versioning.
 */
export interface IdempotencyErrorDetails {
  /** `google.rpc.ErrorInfo` metadata, such as the field name. */
  readonly metadata?: Readonly<Record<string, string>>;
  /** When set, a `google.rpc.RetryInfo` with this delay is attached. */
  readonly retryDelayMs?: number;
  /** What caused it (a store error, say): kept as the ConnectError's `cause`, never sent. */
  readonly cause?: unknown;
}

/**
 * Creates the ConnectError for an idempotency decision, carrying a
 * `google.rpc.ErrorInfo` whose reason a program can match, and optionally a
 * `google.rpc.RetryInfo` that tells when to come back. The code is the
 * reason's, from `errorReasonCode`; `details.cause` becomes the error's cause.
 *
 * @private Internal code, does not follow semantic versioning.
 */
export function createIdempotencyError(
  reason: ErrorReason,
  message: string,
  details: IdempotencyErrorDetails = {},
): ConnectError {
  const outgoing: NonNullable<ConstructorParameters<typeof ConnectError>[3]> = [
    {
      desc: ErrorInfoSchema,
      value: create(ErrorInfoSchema, { reason, domain: ERROR_DOMAIN, metadata: { ...details.metadata } }),
    },
  ];
  if (details.retryDelayMs !== undefined) {
    outgoing.push({
      desc: RetryInfoSchema,
      value: create(RetryInfoSchema, { retryDelay: durationFromMs(details.retryDelayMs) }),
    });
  }
  return new ConnectError(message, errorReasonCode[reason], undefined, outgoing, details.cause);
}

/** The ErrorInfo reason of an error sent by connect-idempotency, if any. */
export function findErrorReason(error: ConnectError): string | undefined {
  return error.findDetails(ErrorInfoSchema).find((info) => info.domain === ERROR_DOMAIN)?.reason;
}

/** The RetryInfo delay of an error in milliseconds, if it carries one. */
export function findRetryDelayMs(error: ConnectError): number | undefined {
  const delay = error.findDetails(RetryInfoSchema)[0]?.retryDelay;
  return delay === undefined ? undefined : Number(delay.seconds) * 1000 + Math.floor(delay.nanos / 1e6);
}

function durationFromMs(ms: number): Duration {
  const whole = Math.max(0, Math.round(ms));
  return create(DurationSchema, { seconds: BigInt(Math.floor(whole / 1000)), nanos: (whole % 1000) * 1e6 });
}
