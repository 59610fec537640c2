import { randomUUID } from "node:crypto";
import { toBinary } from "@bufbuild/protobuf";
import { Code } from "@connectrpc/connect";
import { describe, expect, it } from "vitest";
import { CreatePaymentResponseSchema } from "../../gen/demo/v1/payments_pb.js";
import { ErrorReason } from "../../src/errors/error-reason.js";
import { answerAfterLostClaim } from "../../src/server/answer-after-lost-claim.js";
import { claimKey } from "../../src/server/claim-key.js";
import type { DedupeCall } from "../../src/server/dedupe-call.js";
import { replayedHeader } from "../../src/server/protocol-headers.js";
import { encodeStoredOutcome } from "../../src/server/stored-outcome.js";
import { createStoreCorruptError } from "../../src/store/store-corrupt-error.js";
import { describeError, expectConnectError } from "../support/connect-assertions.js";
import {
  ownerOf,
  paymentIdOf,
  paymentResponse,
  type StepHarness,
  useStepHarness,
} from "../support/dedupe-call-fixture.js";

const { open, openFaulty } = useStepHarness();

function storedResponse(paymentId: string): Uint8Array {
  return encodeStoredOutcome({
    kind: "response",
    response: toBinary(CreatePaymentResponseSchema, paymentResponse(paymentId).message as never),
    header: new Headers(),
    trailer: new Headers(),
  });
}

/**
 * The state after a lost claim: the caller's call, and the successor's
 * claim (another owner) on the same key, still running.
 */
async function lostTo(
  h: StepHarness,
): Promise<{ call: DedupeCall; completeSuccessor(paymentId: string): Promise<boolean> }> {
  const requestId = randomUUID();
  const successor = await h.call({ requestId });
  const claim = await claimKey(successor, "owner-b");
  const call = await h.call({ requestId });
  return {
    call,
    completeSuccessor: (paymentId) =>
      h.raw.complete({
        ...ownerOf(successor.record, claim.record),
        outcome: storedResponse(paymentId),
        retentionMs: 60_000,
      }),
  };
}

describe("answerAfterLostClaim()", () => {
  it("answers with the successor's stored outcome, replayed, never with its own", async () => {
    const h = open();
    const { call, completeSuccessor } = await lostTo(h);
    expect(await completeSuccessor("pay_2")).toBe(true);
    const answer = await answerAfterLostClaim(call);
    expect(paymentIdOf(answer)).toBe("pay_2");
    expect(answer.header.get(replayedHeader)).toBe("true");
  });

  it("waits within the call's wait budget for a successor that is still running", async () => {
    const h = open({ maxWaitMs: 2_000 });
    const { call, completeSuccessor } = await lostTo(h);
    setTimeout(() => void completeSuccessor("pay_2"), 40);
    expect(paymentIdOf(await answerAfterLostClaim(call))).toBe("pay_2");
    expect(h.events.filter((e) => e.type === "waited")).toMatchObject([{ waitResult: "outcome" }]);
  });

  it("answers ABORTED REQUEST_IN_PROGRESS when the successor has no outcome within the wait budget", async () => {
    const h = open({ maxWaitMs: 50 });
    const { call } = await lostTo(h);
    const error = await expectConnectError(answerAfterLostClaim(call));
    expect(describeError(error)).toEqual({
      code: Code.Aborted,
      reason: ErrorReason.REQUEST_IN_PROGRESS,
      message: "a request with this request ID is still running; retry when it has finished",
    });
    expect(h.events.map((e) => [e.type, e.waitResult])).toEqual([
      ["waited", "timeout"],
      ["conflict", undefined],
    ]);
  });

  it("answers ABORTED REQUEST_IN_PROGRESS at once when the key is free again (the successor released it)", async () => {
    const h = open({ maxWaitMs: 5_000 });
    const call = await h.call();
    const started = performance.now();
    const error = await expectConnectError(answerAfterLostClaim(call));
    expect(performance.now() - started).toBeLessThan(1_000);
    expect(describeError(error)).toEqual({
      code: Code.Aborted,
      reason: ErrorReason.REQUEST_IN_PROGRESS,
      message:
        "another execution took over this request ID and has not stored an outcome; retry with the same request ID for its answer",
    });
  });

  it("falls back to polling when the first read fails", async () => {
    const h = openFaulty({ maxWaitMs: 2_000 });
    const { call, completeSuccessor } = await lostTo(h);
    await completeSuccessor("pay_2");
    h.faults.failing.add("get");
    setTimeout(() => h.faults.failing.delete("get"), 30);
    expect(paymentIdOf(await answerAfterLostClaim(call))).toBe("pay_2");
    expect(h.events[0]).toMatchObject({ type: "store_error", operation: "get", willRetry: true });
  });

  it("fails with DATA_LOSS STORE_CORRUPT when the record is damaged", async () => {
    const h = open({}, (raw) => ({
      ...raw,
      get: (key) => Promise.reject(createStoreCorruptError(key, "checksum mismatch")),
    }));
    const error = await expectConnectError(answerAfterLostClaim(await h.call()));
    expect(describeError(error)).toMatchObject({ code: Code.DataLoss, reason: ErrorReason.STORE_CORRUPT });
  });
});
