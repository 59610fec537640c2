import { toBinary } from "@bufbuild/protobuf";
import { ConnectError, type UnaryResponse } from "@connectrpc/connect";
import type { IdempotencyRecord } from "../store/idempotency-store.js";
import { answerAfterLostClaim } from "./answer-after-lost-claim.js";
import type { DedupeCall, UnaryNext } from "./dedupe-call.js";
import { outcomeNotRecorded } from "./dedupe-errors.js";
import { errorAsClientSees, errorDisposition } from "./error-disposition.js";
import { type Execution, keptForm, startExecution } from "./execution.js";
import { isoTime } from "./iso-time.js";
import { encodeOutcome, storedForm } from "./outcome-form.js";
import { expiresHeader } from "./protocol-headers.js";
import { answerCommitted } from "./replay-outcome.js";
import { interruptExecution, releaseExecution, type StoreOutcomeResult, storeOutcome } from "./settle-execution.js";

/**
 * Runs the handler under a fresh claim, then settles its outcome: stores a
 * response or a definite error, interrupts the record after an indefinite
 * one, or releases it when nothing happened. A caller whose execution lost
 * its claim meanwhile is answered from the store instead.
 */
export async function runExecution(
  call: DedupeCall,
  owner: string,
  claimed: IdempotencyRecord,
  replaced: string,
  next: UnaryNext,
): Promise<UnaryResponse> {
  const execution = startExecution(call, owner, claimed, replaced, call.claimSentAt);
  let response: UnaryResponse;
  try {
    response = await next(call.req);
  } catch (thrown) {
    return settleFailure(call, execution, thrown);
  }
  return settleSuccess(call, execution, response);
}

/**
 * The answer that no longer depends on how the handler ended: what its
 * `commit` stored, or, once the claim is lost, what the store holds.
 */
function settledAlready(call: DedupeCall, execution: Execution): UnaryResponse | Promise<UnaryResponse> | undefined {
  const committed = execution.atomic.committed;
  if (committed !== undefined) {
    return answerCommitted(call, execution, committed);
  }
  if (execution.lost) {
    execution.running.settle({ kind: "released" });
    return answerAfterLostClaim(call);
  }
  return undefined;
}

async function settleSuccess(call: DedupeCall, execution: Execution, response: UnaryResponse): Promise<UnaryResponse> {
  const settled = settledAlready(call, execution);
  if (settled !== undefined) {
    return settled;
  }
  const form = storedForm(
    call,
    keptForm(
      call,
      execution,
      encodeOutcome(() => ({
        kind: "response",
        response: toBinary(call.req.method.output, response.message),
        header: response.header,
        trailer: response.trailer,
      })),
    ),
  );
  const stored = await storeOutcome(call, execution, form);
  switch (stored) {
    case "lost":
      return answerAfterLostClaim(call);
    case "unvouched":
    case "failed":
      // Another process may take the key over before this outcome is
      // written: the caller must not hold an answer the store may never have.
      throw outcomeNotRecorded();
    default:
      announceExpiry(response.header, stored, execution);
      return response;
  }
}

/**
 * Tells the first caller until when its outcome is replayed. Not for an
 * outcome dropped from memory: its claim lapses, and a retry takes over.
 */
function announceExpiry(header: Headers, stored: StoreOutcomeResult, execution: Execution): void {
  if (execution.expiresAt !== undefined && (stored === "stored" || stored === "pending")) {
    header.set(expiresHeader, isoTime(execution.expiresAt));
  }
}

async function settleFailure(call: DedupeCall, execution: Execution, thrown: unknown): Promise<UnaryResponse> {
  const settled = settledAlready(call, execution);
  if (settled !== undefined) {
    return settled;
  }
  const { signal } = call.req;
  const error = errorAsClientSees(thrown, signal);
  switch (errorDisposition(thrown, error, call.settings.dispositions, signal)) {
    case "release":
      await releaseExecution(call, execution, error.code);
      break;
    case "interrupt":
      await interruptExecution(call, execution, error.code);
      break;
    case "store": {
      const form = storedForm(
        call,
        encodeOutcome(() => ({ kind: "error", error })),
      );
      const stored = await storeOutcome(call, execution, form);
      if (stored === "lost") {
        return answerAfterLostClaim(call);
      }
      if (stored === "unvouched" || stored === "failed") {
        // As for a response: a stored error is a definite answer, and
        // nobody vouches for this one.
        throw outcomeNotRecorded();
      }
      if (thrown instanceof ConnectError) {
        announceExpiry(thrown.metadata, stored, execution);
      }
    }
  }
  throw thrown;
}
