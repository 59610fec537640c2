import type { DedupeCall } from "./dedupe-call.js";

/**
 * A lower estimate, on the store's clock, of the `expiresAt` a completion
 * written now gives the record: the store's clock seen at the claim, plus
 * the monotonic time since, plus the retention. Taken before the write is
 * sent, it is never later than the store's own value (the store reads its
 * clock after the request reaches it), so a client that stops retrying at
 * it never stops too late. The local wall clock is never read: servers
 * whose clocks disagree with the store's announce the same time.
 */
export function estimateOutcomeExpiry(call: DedupeCall): number | undefined {
  const claimed = call.claimedAt;
  return claimed === undefined
    ? undefined
    : claimed.storeMs + Math.max(0, performance.now() - claimed.monotonicMs) + call.retentionMs;
}
