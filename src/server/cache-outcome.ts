import type { DedupeCall } from "./dedupe-call.js";

/**
 * Puts a completed outcome of the call's key into the replay cache, when it
 * is on. Only outcomes the store holds belong there, never one still waiting
 * for its write. `expiresAt` is a `performance.now()` reading no later than
 * the record's expiry: a local reading taken before the store set or read
 * the expiry, plus the time the store gave it, lands before it.
 */
export function cacheOutcome(call: DedupeCall, outcome: Uint8Array, firstExecutedAt: number, expiresAt: number): void {
  call.replayCache?.set(call.id, { fingerprint: call.fingerprint, outcome, firstExecutedAt }, expiresAt);
}

/**
 * Until when an outcome this call's execution stored lives, at the
 * earliest: the store counts the retention from the completion, which
 * comes after the claim was sent.
 */
export function storedOutcomeExpiry(call: DedupeCall): number {
  return call.claimSentAt + call.retentionMs;
}
