import { randomUUID } from "node:crypto";
import type { UnaryResponse } from "@connectrpc/connect";
import type { IdempotencyRecord } from "../store/idempotency-store.js";
import { cacheOutcome } from "./cache-outcome.js";
import { claimKey } from "./claim-key.js";
import type { DedupeCall, UnaryNext } from "./dedupe-call.js";
import { requestIdExpired, requestIdReused } from "./dedupe-errors.js";
import { replayOutcome } from "./replay-outcome.js";
import { runExecution } from "./run-execution.js";
import { completedOutcome, pollRecord, waitFor } from "./wait-for-outcome.js";

/**
 * Claims the key and runs the handler, or answers from what holds the key:
 * an execution of this process (wait for it, or replay its outcome from
 * memory), a completed outcome in the replay cache (replay it, or refuse
 * another payload, without a store call), or a record in the store (replay
 * it, refuse another payload, or wait for it). A wait that ends with the key
 * free again loops back to the claim.
 */
export async function deduplicate(call: DedupeCall, next: UnaryNext): Promise<UnaryResponse> {
  for (;;) {
    const local = call.inFlight.find(call.id);
    if (local !== undefined) {
      if (!call.matchesFingerprint(local.fingerprint)) {
        throw requestIdReused(call);
      }
      call.fingerprint = local.fingerprint;
      call.expiresAt = local.claimExpiresAt;
      const result = await waitFor(call, (ms) => local.wait(ms, call.req.signal));
      if (result.kind === "outcome") {
        return replayOutcome(call, result.outcome, result.firstExecutedAt, result.expiresAt, result.completedAt);
      }
      continue;
    }
    // After the in-flight check: an execution of this process running the
    // key is newer than anything cached for it.
    const cached = call.replayCache?.get(call.id);
    if (cached !== undefined) {
      if (!call.matchesFingerprint(cached.fingerprint)) {
        throw requestIdReused(call);
      }
      return replayOutcome(call, cached.outcome, cached.firstExecutedAt, undefined, undefined, true);
    }
    const owner = randomUUID();
    const claim = await claimKey(call, owner);
    if (claim.kind === "claimed") {
      return runExecution(call, owner, claim.record, claim.replaced, next);
    }
    const answer = await answerFromRecord(call, claim.record);
    if (answer !== undefined) {
      return answer;
    }
  }
}

/**
 * Answers a duplicate from the record that holds the key, or undefined when
 * the key came free while it waited and is to be claimed again.
 */
async function answerFromRecord(call: DedupeCall, record: IdempotencyRecord): Promise<UnaryResponse | undefined> {
  if (!call.matchesFingerprint(record.fingerprint)) {
    throw requestIdReused(call);
  }
  // A record of an older fingerprint version that matches: claims from now
  // on carry its form, so that the store's own comparison (a takeover)
  // agrees with this one.
  call.fingerprint = record.fingerprint;
  if (record.status === "tombstoned") {
    // Another payload was refused above as REQUEST_ID_REUSED, as for any record.
    throw requestIdExpired(call, record);
  }
  if (record.status === "completed") {
    const result = completedOutcome(record);
    // The claim found the record replayable at `readAt`, by the store's
    // clock; what was left of its replay window then, counted from before the
    // claim was sent, ends no later than the window does.
    cacheOutcome(call, result.outcome, result.firstExecutedAt, call.claimSentAt + (result.expiresAt - record.readAt));
    return replayOutcome(call, result.outcome, result.firstExecutedAt, result.expiresAt, result.completedAt);
  }
  if (call.inFlight.find(call.id) !== undefined) {
    // The owner runs in this process after all: wait for it without polling.
    return undefined;
  }
  const result = await waitFor(call, (ms) => pollRecord(call, ms));
  return result.kind === "outcome"
    ? replayOutcome(call, result.outcome, result.firstExecutedAt, result.expiresAt, result.completedAt)
    : undefined;
}
