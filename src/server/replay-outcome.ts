import { fromBinary } from "@bufbuild/protobuf";
import type { UnaryResponse } from "@connectrpc/connect";
import type { CommittedOutcome } from "./atomic-effects.js";
import { cacheOutcome, storedOutcomeExpiry } from "./cache-outcome.js";
import { emit } from "./call-events.js";
import type { DedupeCall } from "./dedupe-call.js";
import type { Execution } from "./execution.js";
import { firstExecutedAtHeader, replayedHeader } from "./protocol-headers.js";
import { createReplayResponse } from "./replay-response.js";
import { decodeStoredOutcome } from "./stored-outcome.js";

/**
 * Answers with a stored outcome, marked replayed and with the time of the
 * first execution (`idempotency-first-executed-at`); the handler does not run.
 * `fromCache` marks the event of a replay from the replay cache.
 */
export function replayOutcome(
  call: DedupeCall,
  bytes: Uint8Array,
  firstExecutedAt: number,
  fromCache = false,
): UnaryResponse {
  const outcome = decodeStoredOutcome(bytes);
  const executedAt = new Date(firstExecutedAt).toISOString();
  if (outcome.kind === "error") {
    emit(call, "replayed", fromCache ? { code: outcome.error.code, fromCache } : { code: outcome.error.code });
    outcome.error.metadata.set(replayedHeader, "true");
    outcome.error.metadata.set(firstExecutedAtHeader, executedAt);
    throw outcome.error;
  }
  emit(call, "replayed", fromCache ? { fromCache } : undefined);
  const response = createReplayResponse(
    call.req,
    fromBinary(call.req.method.output, outcome.response),
    outcome.header,
    outcome.trailer,
    call.settings.compressions,
  );
  response.header.set(firstExecutedAtHeader, executedAt);
  return response;
}

/**
 * Answers with what the handler's `commit` stored together with its own
 * writes. The key is complete already, so it is not completed again, and
 * the client gets exactly the committed response, whatever the handler did
 * after the commit; the protocol's headers are built as for a replay.
 */
export function answerCommitted(call: DedupeCall, execution: Execution, committed: CommittedOutcome): UnaryResponse {
  execution.keeper.stop();
  execution.running.settle({
    kind: "outcome",
    outcome: committed.stored.bytes,
    firstExecutedAt: execution.firstExecutedAt,
  });
  emit(call, "completed", { code: committed.stored.code });
  // What the store keeps is what a replay answers: the outcome, or
  // RESPONSE_TOO_LARGE.
  cacheOutcome(call, committed.stored.bytes, execution.firstExecutedAt, storedOutcomeExpiry(call));
  const outcome = decodeStoredOutcome(committed.outcome);
  if (outcome.kind === "error") {
    throw outcome.error;
  }
  const response = createReplayResponse(
    call.req,
    fromBinary(call.req.method.output, outcome.response),
    outcome.header,
    outcome.trailer,
    call.settings.compressions,
  );
  response.header.delete(replayedHeader);
  response.header.delete(firstExecutedAtHeader);
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
  source.forEach((value, name) => target.append(name, value));
  return target;
}
