import { toBinary } from "@bufbuild/protobuf";
import { Code, ConnectError } from "@connectrpc/connect";
import { describe, expect, it } from "vitest";
import { CreatePaymentResponseSchema } from "../../gen/demo/v1/payments_pb.js";
import { ErrorReason } from "../../src/errors/error-reason.js";
import { expiresHeader, firstExecutedAtHeader, replayedHeader } from "../../src/server/protocol-headers.js";
import { answerCommitted, replayOutcome } from "../../src/server/replay-outcome.js";
import { encodeStoredOutcome } from "../../src/server/stored-outcome.js";
import { describeError, expectConnectError } from "../support/connect-assertions.js";
import { paymentIdOf, paymentResponse, useStepHarness } from "../support/dedupe-call-fixture.js";

const { open, start } = useStepHarness();

const firstExecutedAt = Date.UTC(2030, 0, 1, 12);
const expiresAt = Date.UTC(2030, 0, 2, 12);
const completedAt = Date.UTC(2030, 0, 1, 12, 0, 1);

/** A stored CreatePayment response, as the store keeps it. */
function storedResponse(
  paymentId: string,
  header = new Headers({ "x-handler": "h" }),
  trailer = new Headers({ "x-trailer": "t" }),
) {
  const response = paymentResponse(paymentId);
  return encodeStoredOutcome({
    kind: "response",
    response: toBinary(CreatePaymentResponseSchema, response.message as never),
    header,
    trailer,
  });
}

describe("replayOutcome()", () => {
  it("answers with the stored response and the handler's headers and trailers, marked replayed, with when it first ran and until when it is replayed", async () => {
    const h = open();
    const call = await h.call();
    const response = replayOutcome(call, storedResponse("pay_1"), firstExecutedAt, expiresAt, completedAt);
    expect(paymentIdOf(response)).toBe("pay_1");
    expect(Object.fromEntries(response.header)).toEqual({
      "content-type": "application/proto",
      "x-handler": "h",
      [replayedHeader]: "true",
      [firstExecutedAtHeader]: new Date(firstExecutedAt).toISOString(),
      [expiresHeader]: new Date(expiresAt).toISOString(),
    });
    expect(Object.fromEntries(response.trailer)).toEqual({ "x-trailer": "t" });
    expect(h.events).toMatchObject([{ type: "replayed" }]);
    expect(h.events[0]?.fromCache).toBeUndefined();
  });

  it("sends no idempotency-expires when the expiry is unknown, and marks a replay from the replay cache in its event", async () => {
    const h = open();
    const call = await h.call();
    const response = replayOutcome(call, storedResponse("pay_1"), firstExecutedAt, undefined, undefined, true);
    expect(response.header.get(expiresHeader)).toBeNull();
    expect(response.header.get(replayedHeader)).toBe("true");
    expect(h.events).toMatchObject([{ type: "replayed", fromCache: true }]);
  });

  it("throws a stored error as it was stored, marked replayed in its metadata", async () => {
    const h = open();
    const call = await h.call();
    const stored = new ConnectError("insufficient funds", Code.FailedPrecondition, { "x-why": "balance" });
    const bytes = encodeStoredOutcome({ kind: "error", error: stored });
    const error = await expectConnectError((async () => replayOutcome(call, bytes, firstExecutedAt, expiresAt))());
    expect([error.code, error.rawMessage, error.metadata.get("x-why")]).toEqual([
      Code.FailedPrecondition,
      "insufficient funds",
      "balance",
    ]);
    expect(error.metadata.get(replayedHeader)).toBe("true");
    expect(error.metadata.get(firstExecutedAtHeader)).toBe(new Date(firstExecutedAt).toISOString());
    expect(h.events).toMatchObject([{ type: "replayed", code: Code.FailedPrecondition }]);
  });

  it("answers a call that ran without a stored response (DUPLICATE_MODE_REJECT) with ALREADY_EXISTS REQUEST_ID_ALREADY_EXECUTED, naming what it created", async () => {
    const h = open({ onDuplicate: "reject" });
    const call = await h.call();
    const bytes = encodeStoredOutcome({ kind: "executed", resourceName: "payments/pay_1" });
    const error = await expectConnectError(
      (async () => replayOutcome(call, bytes, firstExecutedAt, expiresAt, completedAt))(),
    );
    expect(describeError(error)).toEqual({
      code: Code.AlreadyExists,
      reason: ErrorReason.REQUEST_ID_ALREADY_EXECUTED,
      message:
        `a request with this request ID already ran at ${new Date(firstExecutedAt).toISOString()} and created payments/pay_1; ` +
        "its response is not kept, so it is not sent again",
    });
    expect(error.metadata.get(replayedHeader)).toBe("true");
    expect(h.events).toMatchObject([{ type: "replayed", code: Code.AlreadyExists }]);
  });
});

describe("answerCommitted()", () => {
  it("answers with exactly what the handler's commit stored, as a first answer, and wakes the waiters of this process", async () => {
    const h = open();
    const call = await h.call();
    const execution = await start(call, "owner-a");
    const waiting = h.inFlight.find(call.id)!.wait(2_000, new AbortController().signal);
    const outcome = storedResponse("pay_1", new Headers({ "x-committed": "yes" }), new Headers({ "x-trailer": "t" }));
    // The call's own headers, which the handler changed after its commit.
    const responseHeader = new Headers({ "x-late": "after the commit" });
    const responseTrailer = new Headers({ "x-late-trailer": "after the commit" });
    const response = answerCommitted(call, execution, {
      outcome,
      stored: { bytes: outcome, code: undefined },
      responseHeader,
      responseTrailer,
    });
    expect(paymentIdOf(response)).toBe("pay_1");
    expect(response.header).toBe(responseHeader);
    expect(Object.fromEntries(response.header)).toEqual({
      "content-type": "application/proto",
      "x-committed": "yes",
      [expiresHeader]: new Date((call.claimedAt?.storeMs ?? 0) + call.retentionMs).toISOString(),
    });
    expect(Object.fromEntries(response.trailer)).toEqual({ "x-trailer": "t" });
    expect(await waiting).toMatchObject({ kind: "outcome", outcome });
    expect(h.events.map((e) => e.type)).toEqual(["claimed", "completed"]);
  });

  it("throws a committed error outcome to the caller", async () => {
    const h = open();
    const call = await h.call();
    const execution = await start(call, "owner-a");
    const outcome = encodeStoredOutcome({
      kind: "error",
      error: new ConnectError("declined", Code.FailedPrecondition),
    });
    const error = await expectConnectError(
      (async () =>
        answerCommitted(call, execution, {
          outcome,
          stored: { bytes: outcome, code: Code.FailedPrecondition },
          responseHeader: new Headers(),
          responseTrailer: new Headers(),
        }))(),
    );
    expect([error.code, error.rawMessage]).toEqual([Code.FailedPrecondition, "declined"]);
  });
});
