import type { ClaimResult } from "../store/idempotency-store.js";
import { emit, timed } from "./call-events.js";
import type { DedupeCall } from "./dedupe-call.js";
import { isStoreCorruptError } from "../store/store-corrupt-error.js";
import { storeCorrupt, storeUnavailable } from "./dedupe-errors.js";

/**
 * Claims the key for a new execution owned by `owner`, or learns which
 * record holds it. Fails closed with UNAVAILABLE STORE_UNAVAILABLE when the
 * store cannot answer: nothing runs without a claim. A damaged record fails
 * with DATA_LOSS STORE_CORRUPT instead: retrying would meet it again.
 */
export async function claimKey(call: DedupeCall, owner: string): Promise<ClaimResult> {
  const { store, leaseMs, leaseGraceMs } = call.settings;
  const expiresInMs = Math.max(call.retentionMs, leaseMs);
  call.claimSentAt = performance.now();
  call.claimDeadline = call.claimSentAt + expiresInMs;
  try {
    const result = await timed(call, "claim", () =>
      store.claim({
        key: call.record,
        fingerprint: call.fingerprint,
        owner,
        leaseMs,
        graceMs: leaseGraceMs,
        expiresInMs,
      }),
    );
    if (result.kind === "claimed") {
      call.claimedAt = { storeMs: result.record.readAt, monotonicMs: performance.now() };
    }
    call.expiresAt = result.record.expiresAt;
    return result;
  } catch (error) {
    emit(call, "store_error", { operation: "claim", error, willRetry: false });
    throw isStoreCorruptError(error) ? storeCorrupt(error) : storeUnavailable(error);
  }
}
