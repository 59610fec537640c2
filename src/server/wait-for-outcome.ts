import type { IdempotencyRecord } from "../store/idempotency-store.js";
import { sleep } from "./bounded-wait.js";
import { emit, timed } from "./call-events.js";
import type { DedupeCall } from "./dedupe-call.js";
import { isStoreCorruptError } from "../store/store-corrupt-error.js";
import { requestInProgress, storeCorrupt } from "./dedupe-errors.js";
import type { InFlightResult } from "./in-flight-waiters.js";

// Polling a store for an execution in another process: start fast, because
// most handlers finish in milliseconds, and back off to spare the store.
const firstPollMs = 5;
const maxPollMs = 250;

/**
 * Waits for an execution that holds the key, sharing one `maxWaitMs` budget
 * across the waits of a call. Fails with ABORTED REQUEST_IN_PROGRESS when the
 * budget or the call's deadline runs out first.
 */
export async function waitFor(
  call: DedupeCall,
  wait: (timeoutMs: number) => Promise<InFlightResult | undefined>,
): Promise<InFlightResult> {
  const started = performance.now();
  call.waitUntil ??= started + call.settings.maxWaitMs;
  const result = await wait(call.waitUntil - started);
  emit(call, "waited", { waitedMs: performance.now() - started, waitResult: result?.kind ?? "timeout" });
  if (result === undefined) {
    emit(call, "conflict");
    throw requestInProgress(
      "a request with this request ID is still running; retry when it has finished",
      call.expiresAt,
    );
  }
  return result;
}

/**
 * What a record read from the store means for a duplicate with the same
 * payload: its outcome, `released` when the key is free to claim again
 * (deleted, taken by another payload, expired, interrupted, or held by an
 * owner whose lease and grace ran out), or undefined while it runs. Judged by
 * the store's clock (`readAt`).
 */
export function recordState(call: DedupeCall, record: IdempotencyRecord | undefined): InFlightResult | undefined {
  if (record === undefined || !call.matchesFingerprint(record.fingerprint)) {
    return { kind: "released" };
  }
  if ((record.status === "completed" || record.status === "tombstoned") && record.expiresAt <= record.readAt) {
    // Gone: the next claim starts afresh, in this release's fingerprint form.
    return { kind: "released" };
  }
  if (record.status === "tombstoned") {
    // Its replay window ended while this call waited: the claim it loops
    // back to finds the tombstone and answers REQUEST_ID_EXPIRED.
    return { kind: "released" };
  }
  // A live record, perhaps of an older fingerprint version: claims from now
  // on carry its form, so that the store's own comparison (a takeover of an
  // interrupted or dead claim) agrees with this one.
  call.fingerprint = record.fingerprint;
  call.expiresAt = record.expiresAt;
  if (record.status === "completed") {
    return completedOutcome(record);
  }
  if (record.status === "interrupted" || record.leaseUntil + call.settings.leaseGraceMs <= record.readAt) {
    return { kind: "released" };
  }
  return undefined;
}

/**
 * Polls the store for an execution in another process, with backoff, until
 * `recordState` has an answer or `timeoutMs` passes (undefined). A damaged
 * record fails the call with DATA_LOSS STORE_CORRUPT: it is never taken for
 * an absent one, which would run the request again.
 */
export async function pollRecord(call: DedupeCall, timeoutMs: number): Promise<InFlightResult | undefined> {
  const signal = call.req.signal;
  const until = performance.now() + timeoutMs;
  for (let delay = firstPollMs; ; delay = Math.min(delay * 2, maxPollMs)) {
    const remaining = until - performance.now();
    if (remaining <= 0 || signal.aborted) {
      return undefined;
    }
    await sleep(Math.min(delay, remaining), signal);
    if (signal.aborted) {
      return undefined;
    }
    let record: IdempotencyRecord | undefined;
    try {
      record = await timed(call, "get", () => call.settings.store.get(call.record));
    } catch (error) {
      const corrupt = isStoreCorruptError(error);
      emit(call, "store_error", { operation: "get", error, willRetry: !corrupt });
      if (corrupt) {
        throw storeCorrupt(error);
      }
      continue;
    }
    const state = recordState(call, record);
    if (state !== undefined) {
      return state;
    }
  }
}

/** The outcome a completed record replays, with the times its answer carries. */
export function completedOutcome(record: IdempotencyRecord): InFlightResult & { kind: "outcome"; expiresAt: number } {
  return {
    kind: "outcome",
    outcome: record.outcome ?? new Uint8Array(0),
    firstExecutedAt: record.createdAt,
    // `idempotency-expires` says until when the outcome is replayed.
    expiresAt: record.replayUntil ?? record.expiresAt,
    completedAt: record.updatedAt,
  };
}
