import { Code, type ConnectError } from "@connectrpc/connect";
import { describe, expect, it } from "vitest";
import { ErrorInfoSchema } from "../../gen/google/rpc/error_details_pb.js";
import { ErrorReason } from "../../src/errors/error-reason.js";
import { findRetryDelayMs } from "../../src/errors/idempotency-error.js";
import { claimKey } from "../../src/server/claim-key.js";
import {
  outcomeNotRecorded,
  requestIdExpired,
  requestIdReused,
  requestInProgress,
  storeCorrupt,
  storeUnavailable,
} from "../../src/server/dedupe-errors.js";
import { expiresHeader } from "../../src/server/protocol-headers.js";
import { describeError } from "../support/connect-assertions.js";
import { ownerOf, useStepHarness } from "../support/dedupe-call-fixture.js";

const { open } = useStepHarness();

/** The ErrorInfo metadata of an error. */
function errorInfo(error: ConnectError): Record<string, string> | undefined {
  return error.findDetails(ErrorInfoSchema)[0]?.metadata;
}

describe("requestIdReused()", () => {
  it("is FAILED_PRECONDITION REQUEST_ID_REUSED naming the request ID field, and reports a mismatch", async () => {
    const h = open();
    const error = requestIdReused(await h.call());
    expect(describeError(error)).toMatchObject({
      code: Code.FailedPrecondition,
      reason: ErrorReason.REQUEST_ID_REUSED,
    });
    expect(errorInfo(error)).toEqual({ field: "request_id" });
    expect(h.events).toMatchObject([{ type: "mismatch" }]);
  });
});

describe("requestIdExpired()", () => {
  it("is FAILED_PRECONDITION REQUEST_ID_EXPIRED with when the request first ran and completed and its original code", async () => {
    const h = open();
    const call = await h.call();
    const claim = await claimKey(call, "owner-a");
    h.clock.advance(5);
    await h.raw.complete({
      ...ownerOf(call.record, claim.record),
      outcome: new Uint8Array([1]),
      retentionMs: 1_000,
      tombstoneMs: 60_000,
      outcomeCode: Code.NotFound,
    });
    h.clock.advance(1_000);
    const record = (await h.record(call))!;
    expect(record.status).toBe("tombstoned");
    const error = requestIdExpired(call, record);
    expect(describeError(error)).toMatchObject({
      code: Code.FailedPrecondition,
      reason: ErrorReason.REQUEST_ID_EXPIRED,
    });
    expect(errorInfo(error)).toEqual({
      field: "request_id",
      completed_at: new Date(record.createdAt + 5).toISOString(),
      original_code: String(Code.NotFound),
      first_executed_at: new Date(record.createdAt).toISOString(),
    });
    expect(h.events).toMatchObject([{ type: "tombstoned" }]);
  });
});

describe("requestInProgress()", () => {
  it("is ABORTED REQUEST_IN_PROGRESS with a retry delay, and names until when the claim holds the key when known", () => {
    const known = requestInProgress("still running", Date.UTC(2030, 0, 1));
    expect(describeError(known)).toEqual({
      code: Code.Aborted,
      reason: ErrorReason.REQUEST_IN_PROGRESS,
      message: "still running",
    });
    expect(findRetryDelayMs(known)).toBe(1_000);
    expect(known.metadata.get(expiresHeader)).toBe("2030-01-01T00:00:00.000Z");
    expect(requestInProgress("still running").metadata.get(expiresHeader)).toBeNull();
  });
});

describe("store errors", () => {
  it("are UNAVAILABLE STORE_UNAVAILABLE for a store that cannot answer or an outcome not recorded, and DATA_LOSS STORE_CORRUPT for a damaged record, keeping the cause", () => {
    const cause = new Error("SQLITE_BUSY");
    expect([
      storeUnavailable(cause).code,
      describeError(storeUnavailable(cause)).reason,
      storeUnavailable(cause).cause,
    ]).toEqual([Code.Unavailable, ErrorReason.STORE_UNAVAILABLE, cause]);
    expect(describeError(outcomeNotRecorded())).toMatchObject({
      code: Code.Unavailable,
      reason: ErrorReason.STORE_UNAVAILABLE,
    });
    expect([storeCorrupt(cause).code, describeError(storeCorrupt(cause)).reason, storeCorrupt(cause).cause]).toEqual([
      Code.DataLoss,
      ErrorReason.STORE_CORRUPT,
      cause,
    ]);
  });
});
