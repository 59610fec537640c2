import { fromBinary } from "@bufbuild/protobuf";
import { Code, ConnectError, type UnaryResponse } from "@connectrpc/connect";
import { ErrorReason } from "../errors/error-reason.js";
import { createIdempotencyError } from "../errors/idempotency-error.js";
import type { CommittedOutcome } from "./atomic-effects.js";
import { cacheOutcome, storedOutcomeExpiry } from "./cache-outcome.js";
import { emit } from "./call-events.js";
import type { DedupeCall } from "./dedupe-call.js";
import type { Execution } from "./execution.js";
import { isoTime } from "./iso-time.js";
import { expiresHeader, firstExecutedAtHeader, replayedHeader } from "./protocol-headers.js";
import { createReplayResponse } from "./replay-response.js";
import { decodeStoredOutcome, type StoredOutcomeValue } from "./stored-outcome.js";

/**
 * Answers with a stored outcome, marked replayed, with the time of the
 * first execution (`idempotency-first-executed-at`) and, when known, until
 * when it is replayed (`idempotency-expires`, the record's `expiresAt`); the
 * handler does not run. A success stored without its response
 * (DUPLICATE_MODE_REJECT) is answered with ALREADY_EXISTS
 * REQUEST_ID_ALREADY_EXECUTED.
 * `fromCache` marks the event of a replay from the replay cache.
 */
export function replayOutcome(
  call: DedupeCall,
  bytes: Uint8Array,
  firstExecutedAt: number,
  expiresAt: number | undefined,
  completedAt?: number,
  fromCache = false,
): UnaryResponse {
  const outcome = decodeStoredOutcome(bytes);
  const executedAt = isoTime(firstExecutedAt);
  const mark = (headers: Headers) => {
    headers.set(replayedHeader, "true");
    headers.set(firstExecutedAtHeader, executedAt);
    if (expiresAt !== undefined) {
      headers.set(expiresHeader, isoTime(expiresAt));
    }
  };
  if (outcome.kind === "error" || outcome.kind === "executed") {
    const error =
      outcome.kind === "error" ? outcome.error : alreadyExecuted(call, executedAt, completedAt, outcome.resourceName);
    emit(call, "replayed", fromCache ? { code: error.code, fromCache } : { code: error.code });
    mark(error.metadata);
    throw error;
  }
  emit(call, "replayed", fromCache ? { fromCache } : undefined);
  const response = responseOf(call, outcome);
  mark(response.header);
  return response;
}

/** ALREADY_EXISTS REQUEST_ID_ALREADY_EXECUTED, for a duplicate in DUPLICATE_MODE_REJECT. */
function alreadyExecuted(
  call: DedupeCall,
  executedAt: string,
  completedAt: number | undefined,
  resourceName: string,
): ConnectError {
  const what = call.naturalKey ? `the key of this request (fields ${call.fieldName})` : "this request ID";
  return createIdempotencyError(
    ErrorReason.REQUEST_ID_ALREADY_EXECUTED,
    `a request with ${what} already ran at ${executedAt}` +
      (resourceName === "" ? "" : ` and created ${resourceName}`) +
      "; its response is not kept, so it is not sent again",
    {
      metadata: {
        first_executed_at: executedAt,
        ...(completedAt === undefined ? {} : { completed_at: isoTime(completedAt) }),
        ...(resourceName === "" ? {} : { resource_name: resourceName }),
      },
    },
  );
}

/**
 * Answers with what the handler's `commit` stored together with its own
 * writes. The key is complete already, so it is not completed again, and
 * the client gets exactly the committed response, whatever the handler did
 * after the commit; the protocol's headers are built as for a replay.
 */
export function answerCommitted(call: DedupeCall, execution: Execution, committed: CommittedOutcome): UnaryResponse {
  execution.keeper.stop();
  execution.expiresAt = call.claimedAt === undefined ? undefined : call.claimedAt.storeMs + call.retentionMs;
  execution.running.settle({
    kind: "outcome",
    outcome: committed.stored.bytes,
    firstExecutedAt: execution.firstExecutedAt,
    // Committed at some point since the claim: the claim's own store time
    // plus the retention is a lower bound of its expiry.
    expiresAt: execution.expiresAt,
  });
  emit(call, "completed", { code: committed.stored.code });
  // What the store keeps is what a replay answers: the outcome, or
  // RESPONSE_TOO_LARGE.
  cacheOutcome(call, committed.stored.bytes, execution.firstExecutedAt, storedOutcomeExpiry(call));
  const outcome = decodeStoredOutcome(committed.outcome);
  if (outcome.kind === "error") {
    throw outcome.error;
  }
  if (outcome.kind === "executed") {
    // `commit` encodes the handler's response; the kept form is only stored.
    throw new ConnectError("committed outcome carries no response", Code.Internal);
  }
  const response = responseOf(call, outcome);
  response.header.delete(replayedHeader);
  response.header.delete(firstExecutedAtHeader);
  if (execution.expiresAt !== undefined) {
    response.header.set(expiresHeader, isoTime(execution.expiresAt));
  } else {
    response.header.delete(expiresHeader);
  }
  // connect copies returned headers into the call's own with a loop that
  // deletes while it iterates, and so keeps every other name the handler
  // set after the commit. Answering with the call's own objects, refilled,
  // sends exactly the committed ones.
  return {
    ...response,
    header: refill(committed.responseHeader, response.header),
    trailer: refill(committed.responseTrailer, response.trailer),
  };
}

/** Replaces every entry of `target` with those of `source`; returns `target`. */
function refill(target: Headers, source: Headers): Headers {
  for (const name of [...target.keys()]) {
    target.delete(name);
  }
  source.forEach((value, name) => {
    target.append(name, value);
  });
  return target;
}

/** The response of a stored success, with the headers this call's protocol needs. */
function responseOf(call: DedupeCall, outcome: StoredOutcomeValue & { kind: "response" }): UnaryResponse {
  return createReplayResponse(
    call.req,
    fromBinary(call.req.method.output, outcome.response),
    outcome.header,
    outcome.trailer,
    call.settings.compressions,
  );
}
