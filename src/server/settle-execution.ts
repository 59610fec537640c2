import type { Code } from "@connectrpc/connect";
import type { StoredForm } from "./atomic-effects.js";
import { cacheOutcome, storedOutcomeExpiry } from "./cache-outcome.js";
import { emit, timed } from "./call-events.js";
import type { DedupeCall } from "./dedupe-call.js";
import { type Execution, markClaimLost } from "./execution.js";
import { storeRetryMs } from "./interceptor-options.js";
import { estimateOutcomeExpiry } from "./outcome-expiry.js";

/**
 * Where a stored outcome ended up: written (`stored`), held in memory while
 * its write is retried in the background (`pending`), left unwritten because
 * it did not fit in memory (`dropped`: the claim lapses and a retry takes
 * over), unwritten past the last confirmed lease (`unvouched`: the write is
 * retried, but nobody is answered from memory, since another process may
 * have taken the key over), given up because the claim's deadline passed
 * before a write landed (`failed`: the claim lapses, and a retry takes over
 * as a new attempt), or refused because another execution took the key over
 * (`lost`).
 */
export type StoreOutcomeResult = "stored" | "pending" | "dropped" | "unvouched" | "failed" | "lost";

/**
 * Stores the outcome and wakes the duplicates waiting in this process.
 *
 * When the write fails, the outcome stays in memory: duplicates reaching
 * this process are answered from it and never claim, the lease keeper goes
 * on renewing, and the write is retried every `storeRetryMs` until it lands,
 * the claim is lost, or the claim would have expired anyway. The caller gets
 * its answer meanwhile. Duplicates are answered from memory only while the
 * claim is known to be held (the last confirmed renewal plus the lease);
 * after that they wait for the write. When the first write already fails
 * past that point, the caller gets UNAVAILABLE instead (`unvouched`).
 * Outcomes held this way are bounded by the interceptor's pending budget;
 * one that does not fit is dropped, and its claim left to lapse, so that a
 * retry takes over as a new attempt rather than replaying nothing or running
 * silently again.
 */
export async function storeOutcome(
  call: DedupeCall,
  execution: Execution,
  form: StoredForm,
): Promise<StoreOutcomeResult> {
  // Estimated before the first write is sent: a write that lands later
  // only keeps the outcome longer.
  execution.expiresAt = estimateOutcomeExpiry(call);
  const { expiresAt } = execution;
  const result = await completeOnce(call, execution, form);
  if (result === "retry") {
    const size = form.bytes.byteLength;
    const vouched = performance.now() < execution.heldUntil;
    if (!call.pending.reserve(size)) {
      execution.keeper.stop();
      emit(call, "completion_dropped", { responseBytes: size });
      execution.running.settle({ kind: "released" });
      return vouched ? "dropped" : "unvouched";
    }
    if (vouched) {
      execution.running.hold(form.bytes, execution.firstExecutedAt, expiresAt);
    }
    retryInBackground(async () => {
      const again = await completeOnce(call, execution, form);
      if (again === "retry") {
        if (performance.now() >= execution.heldUntil) {
          // Past the last confirmed lease, another process may have taken the
          // key over: duplicates of this process wait for the write (and
          // never claim) rather than get an answer the store may not hold.
          // The write goes on; it is fenced, and lands only if the claim is
          // still this execution's.
          execution.running.withhold();
        }
        return true;
      }
      call.pending.free(size);
      // Lost to a successor, or given up: duplicates go to the store.
      execution.running.settle(
        again === "stored"
          ? { kind: "outcome", outcome: form.bytes, firstExecutedAt: execution.firstExecutedAt, expiresAt }
          : { kind: "released" },
      );
      return false;
    });
    return vouched ? "pending" : "unvouched";
  }
  if (result === "stored") {
    execution.running.settle({
      kind: "outcome",
      outcome: form.bytes,
      firstExecutedAt: execution.firstExecutedAt,
      expiresAt,
    });
    cacheOutcome(call, form.bytes, execution.firstExecutedAt, storedOutcomeExpiry(call));
    return "stored";
  }
  if (result === "failed") {
    execution.running.settle({ kind: "released" });
    return "failed";
  }
  // After a lost claim the store holds the successor's outcome: waiters go
  // back to the store for it rather than take this one.
  execution.running.settle({ kind: "released" });
  return "lost";
}

/**
 * Marks the record interrupted after an indefinite error: it keeps its
 * phases, and the next call with the same payload takes it over at once.
 * A failed write is retried in the background while it can still matter,
 * until the lease and grace have run out (a takeover is allowed then
 * anyway); the lease is no longer renewed meanwhile.
 */
export async function interruptExecution(call: DedupeCall, execution: Execution, code: Code): Promise<void> {
  execution.keeper.stop();
  const { store, leaseMs, leaseGraceMs } = call.settings;
  const until = performance.now() + leaseMs + leaseGraceMs;
  const interruptOnce = async (): Promise<boolean> => {
    try {
      const held = await timed(call, "interrupt", () =>
        store.interrupt({ key: call.record, owner: execution.owner, attempt: execution.attempt }),
      );
      if (held) {
        emit(call, "interrupted", { code });
      } else {
        markClaimLost(call, execution, "interrupt");
      }
      return false;
    } catch (error) {
      const willRetry = performance.now() < until;
      emit(call, "store_error", { operation: "interrupt", error, willRetry });
      return willRetry;
    }
  };
  if (await interruptOnce()) {
    retryInBackground(interruptOnce);
  }
  execution.running.settle({ kind: "released" });
}

/**
 * Deletes the record and its phases after the handler said nothing
 * happened (`releaseOnError`, or a released code). A failed delete leaves
 * the lease to run out; a takeover then keeps the phases, which is the safe
 * side.
 */
export async function releaseExecution(call: DedupeCall, execution: Execution, code: Code): Promise<void> {
  execution.keeper.stop();
  try {
    const held = await timed(call, "release", () =>
      call.settings.store.release({ key: call.record, owner: execution.owner, attempt: execution.attempt }),
    );
    if (held) {
      emit(call, "released", { code });
    } else {
      markClaimLost(call, execution, "release");
    }
  } catch (error) {
    emit(call, "store_error", { operation: "release", error, willRetry: false });
  }
  execution.running.settle({ kind: "released" });
}

/**
 * One attempt to write the outcome: `retry` when it failed and is worth
 * retrying. Retrying stops once the claim is lost, or past the claim's
 * expiry, when the record is fair game for the sweeper anyway (`failed`).
 * The lease keeper runs as long as retries do.
 */
async function completeOnce(
  call: DedupeCall,
  execution: Execution,
  form: StoredForm,
): Promise<"stored" | "lost" | "retry" | "failed"> {
  try {
    const stored = await timed(call, "complete", () =>
      call.settings.store.complete({
        key: call.record,
        owner: execution.owner,
        attempt: execution.attempt,
        outcome: form.bytes,
        retentionMs: call.retentionMs,
        tombstoneMs: call.tombstoneMs,
        outcomeCode: form.code ?? 0,
      }),
    );
    execution.keeper.stop();
    if (!stored) {
      markClaimLost(call, execution, "complete");
      return "lost";
    }
    emit(call, "completed", { code: form.code });
    return "stored";
  } catch (error) {
    const willRetry = !execution.lost && performance.now() < call.claimDeadline;
    if (!willRetry) {
      execution.keeper.stop();
    }
    emit(call, "store_error", { operation: "complete", error, willRetry });
    return execution.lost ? "lost" : willRetry ? "retry" : "failed";
  }
}

/**
 * Runs `step` every `storeRetryMs` until it resolves false. The timer does
 * not keep the process alive.
 */
function retryInBackground(step: () => Promise<boolean>): void {
  setTimeout(() => {
    void step().then((again) => {
      if (again) {
        retryInBackground(step);
      }
    });
  }, storeRetryMs).unref();
}
