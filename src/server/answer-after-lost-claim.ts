import type { UnaryResponse } from "@connectrpc/connect";
import { emit, timed } from "./call-events.js";
import type { DedupeCall } from "./dedupe-call.js";
import { isStoreCorruptError } from "../store/store-corrupt-error.js";
import { requestInProgress, storeCorrupt } from "./dedupe-errors.js";
import type { InFlightResult } from "./in-flight-waiters.js";
import { replayOutcome } from "./replay-outcome.js";
import { pollRecord, recordState, waitFor } from "./wait-for-outcome.js";

/**
 * Answers the caller of an execution that lost its claim (it stalled or was
 * cut off from the store past its lease, and another execution took over):
 * never with its own result, which the store does not hold, but with the
 * successor's stored outcome, replayed, once there is one within the call's
 * wait budget; else ABORTED REQUEST_IN_PROGRESS, so that the client asks
 * again with the same request ID.
 */
export async function answerAfterLostClaim(call: DedupeCall): Promise<UnaryResponse> {
  let state: InFlightResult | undefined;
  try {
    state = recordState(call, await timed(call, "get", () => call.settings.store.get(call.record)));
  } catch (error) {
    const corrupt = isStoreCorruptError(error);
    emit(call, "store_error", { operation: "get", error, willRetry: !corrupt });
    if (corrupt) {
      throw storeCorrupt(error);
    }
  }
  state ??= await waitFor(call, (ms) => pollRecord(call, ms));
  if (state.kind === "outcome") {
    return replayOutcome(call, state.outcome, state.firstExecutedAt, state.expiresAt, state.completedAt);
  }
  throw requestInProgress(
    "another execution took over this request ID and has not stored an outcome; retry with the same request ID for its answer",
    call.expiresAt,
  );
}
