import { ErrorReason } from "../errors/error-reason.js";
import type { IdempotencyRecord } from "../store/idempotency-store.js";
import { type AtomicClaim, atomicClaimKey, type StoredForm } from "./atomic-effects.js";
import { emit, timed } from "./call-events.js";
import type { DedupeCall } from "./dedupe-call.js";
import { requestInProgress } from "./dedupe-errors.js";
import { type ExecutedResourceBox, executedResourceKey } from "./executed-resource-name.js";
import { createIdempotencyContextValue, idempotencyContext } from "./idempotency-context.js";
import type { StoreOperation } from "./idempotency-event.js";
import type { InFlightOwner } from "./in-flight-waiters.js";
import { storeRetryMs } from "./interceptor-options.js";
import { createLazyAbortController, type LazyAbortController } from "./lazy-abort-controller.js";
import { type LeaseKeeper, startLeaseKeeper } from "./lease-keeper.js";
import { storedForm } from "./outcome-form.js";
import { encodeStoredOutcome } from "./stored-outcome.js";

/** One execution of the handler under a claim, from the claim until its outcome is settled. */
export interface Execution {
  /** The owner token of the claim. */
  readonly owner: string;
  /** Which execution of the key this is (1 for the first). */
  readonly attempt: number;
  /** When the first execution under the key claimed it, by the store's clock. */
  readonly firstExecutedAt: number;
  /** Its entry among this process's in-flight executions. */
  readonly running: InFlightOwner;
  /** Renews the lease while the handler runs and while the outcome is not yet written. */
  readonly keeper: LeaseKeeper;
  /** Aborts when the claim is lost; the handler sees it as `idempotencyContext.signal`. */
  readonly lostSignal: LazyAbortController;
  /** Set by `commit` when the handler completed the key together with its own writes. */
  readonly atomic: AtomicClaim;
  /** The resource name the handler set (`setExecutedResourceName`). */
  readonly resource: ExecutedResourceBox;
  /**
   * Until when its stored outcome is replayed, by the store's clock, as
   * estimated before the write (`estimateOutcomeExpiry`); undefined until
   * the outcome is written.
   */
  expiresAt: number | undefined;
  /** Another execution took the key over: nothing of this one is written any more. */
  lost: boolean;
  /**
   * Until when (`performance.now()` time) the claim is known to be this
   * execution's: the sending time of the latest claim or renewal the store
   * confirmed, plus the lease. Nobody can take over before then, so an
   * outcome not yet written may be answered from memory only until then.
   */
  heldUntil: number;
}

/**
 * Starts an execution on a fresh claim: registers it for duplicates in this
 * process, starts renewing its lease, and tells the handler (through the
 * call's context values) which attempt it is and how to commit atomically.
 */
export function startExecution(
  call: DedupeCall,
  owner: string,
  claimed: IdempotencyRecord,
  replaced: string,
  claimSentAt: number,
): Execution {
  const running = call.inFlight.begin(call.id, call.fingerprint, claimed.expiresAt);
  emit(call, replaced === "none" ? "claimed" : replaced === "takeover" ? "takeover" : "expired", {
    attempt: claimed.attempt,
  });
  const lostSignal = createLazyAbortController();
  const { attempt } = claimed;
  const execution: Execution = {
    owner,
    attempt,
    firstExecutedAt: claimed.createdAt,
    running,
    // Methods rather than arrow functions here and below: tsx (which the
    // bench and the tests run on) compiles with esbuild's keepNames, which
    // wraps every arrow function stored in a property in a defineProperty
    // call each time it is created, here once per call.
    keeper: keepLease(call, owner, attempt, {
      held(sentAt) {
        execution.heldUntil = Math.max(execution.heldUntil, sentAt + call.settings.leaseMs);
      },
      lost() {
        void confirmClaimLost(call, execution);
      },
    }),
    lostSignal,
    atomic: {
      store: call.settings.store,
      key: call.record,
      owner,
      attempt,
      retentionMs: call.retentionMs,
      tombstoneMs: call.tombstoneMs,
      storeCall(operation, run) {
        return atomicStoreCall(call, operation, run);
      },
      claimLost(operation) {
        markClaimLost(call, execution, operation);
      },
      storedForm(outcome) {
        return storedForm(call, keptForm(call, execution, { bytes: outcome, code: undefined }));
      },
      committed: undefined,
    },
    resource: { name: "" },
    expiresAt: undefined,
    lost: false,
    heldUntil: claimSentAt + call.settings.leaseMs,
  };
  const values = call.req.contextValues;
  values.set(
    idempotencyContext,
    createIdempotencyContextValue({
      key: call.record.key,
      scope: call.record.scope,
      method: call.record.method,
      attempt: claimed.attempt,
      takeover: claimed.attempt > 1,
      lostSignal,
    }),
  );
  values.set(atomicClaimKey, execution.atomic);
  values.set(executedResourceKey, execution.resource);
  return execution;
}

/**
 * What the store keeps of a response: the response, or in
 * DUPLICATE_MODE_REJECT only that the call ran and the resource name the
 * handler set, so that no response body (and none of the personal data it
 * may carry) is stored.
 */
export function keptForm(call: DedupeCall, execution: Execution, response: StoredForm): StoredForm {
  return call.duplicateMode === "reject"
    ? { bytes: encodeStoredOutcome({ kind: "executed", resourceName: execution.resource.name }), code: undefined }
    : response;
}

/**
 * Records that another execution took the key over: this one writes
 * nothing more, its handler's signal aborts, and its caller is answered
 * from the store.
 */
export function markClaimLost(call: DedupeCall, execution: Execution, operation: StoreOperation): void {
  if (execution.lost) {
    return;
  }
  execution.lost = true;
  execution.keeper.stop();
  emit(call, "claim_lost", { operation });
  execution.lostSignal.abort(
    requestInProgress(
      `another execution took over this request ID (${ErrorReason.REQUEST_IN_PROGRESS}); this one's outcome is not stored`,
    ),
  );
}

/**
 * A renewal found the claim no longer running. That is a lost claim, unless
 * this execution's own completion landed meanwhile (a renewal retried after
 * an outage can reach the store just after the completion did): the record
 * then shows this owner and attempt, completed.
 */
async function confirmClaimLost(call: DedupeCall, execution: Execution): Promise<void> {
  try {
    const record = await timed(call, "get", () => call.settings.store.get(call.record));
    if (
      (record?.status === "completed" || record?.status === "tombstoned") &&
      record.owner === execution.owner &&
      record.attempt === execution.attempt
    ) {
      return;
    }
  } catch (error) {
    // Unknown: the safe side is to stop counting on the claim.
    emit(call, "store_error", { operation: "get", error, willRetry: false });
  }
  markClaimLost(call, execution, "renew");
}

interface LeaseReports {
  /** The store confirmed a renewal sent at `sentAt` (`performance.now()`). */
  readonly held: (sentAt: number) => void;
  /** A renewal found the claim no longer running. */
  readonly lost: () => void;
}

function keepLease(call: DedupeCall, owner: string, attempt: number, reports: LeaseReports): LeaseKeeper {
  const { store, leaseMs } = call.settings;
  return startLeaseKeeper({
    intervalMs: Math.max(1, Math.floor(leaseMs / 3)),
    retryMs: storeRetryMs,
    async renew() {
      const sentAt = performance.now();
      const held = await timed(call, "renew", () => store.renew({ key: call.record, owner, attempt, leaseMs }));
      if (held) {
        reports.held(sentAt);
      }
      return held;
    },
    onError(error) {
      emit(call, "store_error", { operation: "renew", error, willRetry: true });
    },
    onLost() {
      reports.lost();
    },
  });
}

/**
 * Runs a store operation of the handler's atomic effects: timed, and
 * reported when it fails (the handler's call then fails).
 */
async function atomicStoreCall<T>(call: DedupeCall, operation: StoreOperation, run: () => Promise<T>): Promise<T> {
  try {
    return await timed(call, operation, run);
  } catch (error) {
    emit(call, "store_error", { operation, error, willRetry: false });
    throw error;
  }
}
