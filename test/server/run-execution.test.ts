import { randomUUID } from "node:crypto";
import { fromBinary } from "@bufbuild/protobuf";
import { Code, ConnectError, type UnaryResponse } from "@connectrpc/connect";
import { describe, expect, it } from "vitest";
import { CreatePaymentResponseSchema } from "../../gen/demo/v1/payments_pb.js";
import { ErrorReason } from "../../src/errors/error-reason.js";
import { claimKey } from "../../src/server/claim-key.js";
import type { DedupeCall, UnaryNext } from "../../src/server/dedupe-call.js";
import { interruptOnError, releaseOnError, storeOnError } from "../../src/server/error-disposition.js";
import { idempotencyContext, type IdempotencyContextValue } from "../../src/server/idempotency-context.js";
import { expiresHeader, replayedHeader } from "../../src/server/protocol-headers.js";
import { runExecution } from "../../src/server/run-execution.js";
import { decodeStoredOutcome } from "../../src/server/stored-outcome.js";
import { describeError, expectConnectError } from "../support/connect-assertions.js";
import {
  openSecondProcess,
  paymentIdOf,
  paymentResponse,
  stepLeaseGraceMs,
  stepLeaseMs,
  useStepHarness,
} from "../support/dedupe-call-fixture.js";

const { open, openFaulty } = useStepHarness();

/** Claims the call's key and runs `next` under the claim, as `deduplicate` does after a fresh claim. */
async function claimAndRun(call: DedupeCall, owner: string, next: UnaryNext): Promise<UnaryResponse> {
  const claim = await claimKey(call, owner);
  if (claim.kind !== "claimed") {
    throw new Error(`expected a fresh claim, found ${claim.record.status}`);
  }
  return runExecution(call, owner, claim.record, claim.replaced, next);
}

function storedValue(record: { outcome: Uint8Array | undefined } | undefined) {
  if (record?.outcome === undefined) {
    throw new Error("the record holds no outcome");
  }
  return decodeStoredOutcome(record.outcome);
}

describe("runExecution()", () => {
  it("runs the handler once under the claim, stores its response with the handler's headers, and announces the expiry", async () => {
    const h = open();
    const call = await h.call();
    let runs = 0;
    let seen: IdempotencyContextValue | undefined;
    const response = await claimAndRun(call, "owner-a", async (req) => {
      runs++;
      seen = req.contextValues.get(idempotencyContext);
      return paymentResponse("pay_1");
    });
    expect(runs).toBe(1);
    expect(seen).toMatchObject({ key: call.record.key, scope: "", attempt: 1, takeover: false });
    expect(paymentIdOf(response)).toBe("pay_1");
    expect(response.header.get(replayedHeader)).toBeNull();
    const record = await h.record(call);
    expect(record).toMatchObject({ status: "completed", owner: "owner-a", attempt: 1 });
    expect(new Date(response.header.get(expiresHeader) ?? "").getTime()).toBeLessThanOrEqual(record?.expiresAt ?? 0);
    const stored = storedValue(record);
    expect(stored.kind).toBe("response");
    if (stored.kind === "response") {
      expect(fromBinary(CreatePaymentResponseSchema, stored.response).payment?.paymentId).toBe("pay_1");
      expect(Object.fromEntries(stored.header)).toEqual({ "x-handler": "h" });
      expect(Object.fromEntries(stored.trailer)).toEqual({ "x-trailer": "t" });
    }
    expect(h.events.map((e) => e.type)).toEqual(["claimed", "completed"]);
    expect(h.inFlight.size).toBe(0);
  });

  it("wakes a duplicate of this process that waits for the execution with the stored outcome", async () => {
    const h = open();
    const call = await h.call();
    let waiting: ReturnType<NonNullable<ReturnType<typeof h.inFlight.find>>["wait"]> | undefined;
    await claimAndRun(call, "owner-a", async () => {
      waiting = h.inFlight.find(call.id)?.wait(5_000, new AbortController().signal);
      return paymentResponse("pay_1");
    });
    const result = await waiting;
    expect(result?.kind).toBe("outcome");
    expect(result?.kind === "outcome" && result.outcome).toEqual((await h.record(call))?.outcome);
  });

  it("stores an error of a stored code and throws it to the caller, with the expiry in its metadata", async () => {
    const h = open();
    const call = await h.call();
    const thrown = new ConnectError("insufficient funds", Code.FailedPrecondition);
    const error = await expectConnectError(claimAndRun(call, "owner-a", () => Promise.reject(thrown)));
    expect(error).toBe(thrown);
    expect(error.metadata.get(expiresHeader)).not.toBeNull();
    const record = await h.record(call);
    expect(record).toMatchObject({ status: "completed", outcomeCode: Code.FailedPrecondition });
    const stored = storedValue(record);
    expect(stored.kind === "error" && [stored.error.code, stored.error.rawMessage]).toEqual([
      Code.FailedPrecondition,
      "insufficient funds",
    ]);
    expect(h.events.map((e) => [e.type, e.code])).toEqual([
      ["claimed", undefined],
      ["completed", Code.FailedPrecondition],
    ]);
  });

  it("interrupts the record after an indefinite error: it stays, and the next claim takes it over as attempt 2", async () => {
    const h = open();
    const requestId = randomUUID();
    const call = await h.call({ requestId });
    const thrown = new ConnectError("bank timed out", Code.Unavailable);
    expect(await expectConnectError(claimAndRun(call, "owner-a", () => Promise.reject(thrown)))).toBe(thrown);
    expect(await h.record(call)).toMatchObject({ status: "interrupted", owner: "owner-a", attempt: 1 });
    expect(h.events.map((e) => [e.type, e.code])).toEqual([
      ["claimed", undefined],
      ["interrupted", Code.Unavailable],
    ]);
    let seen: IdempotencyContextValue | undefined;
    const retry = await h.call({ requestId });
    await claimAndRun(retry, "owner-b", async (req) => {
      seen = req.contextValues.get(idempotencyContext);
      return paymentResponse("pay_2");
    });
    expect(seen).toMatchObject({ attempt: 2, takeover: true });
  });

  it("releases the record after an error of a released code, so that a retry runs afresh as attempt 1", async () => {
    const h = open();
    const call = await h.call();
    await expectConnectError(
      claimAndRun(call, "owner-a", () => Promise.reject(new ConnectError("who?", Code.Unauthenticated))),
    );
    expect(await h.record(call)).toBeUndefined();
    expect(h.events.map((e) => [e.type, e.code])).toEqual([
      ["claimed", undefined],
      ["released", Code.Unauthenticated],
    ]);
    expect(h.inFlight.size).toBe(0);
  });

  it("follows a handler's mark over the code: releaseOnError, interruptOnError, storeOnError", async () => {
    const h = open();
    const outcomes: unknown[] = [];
    for (const [mark, code] of [
      [releaseOnError, Code.FailedPrecondition],
      [interruptOnError, Code.InvalidArgument],
      [storeOnError, Code.Unavailable],
    ] as const) {
      const call = await h.call();
      await expectConnectError(
        claimAndRun(call, "owner-a", () => Promise.reject(mark(new ConnectError("marked", code)))),
      );
      outcomes.push((await h.record(call))?.status);
    }
    expect(outcomes).toEqual([undefined, "interrupted", "completed"]);
  });

  it("stores a thrown non-ConnectError as the internal error the client sees", async () => {
    const h = open();
    const call = await h.call();
    const error = await claimAndRun(call, "owner-a", () => Promise.reject(new TypeError("oops"))).catch(
      (e: unknown) => e,
    );
    expect(error).toBeInstanceOf(TypeError);
    const stored = storedValue(await h.record(call));
    expect(stored.kind === "error" && [stored.error.code, stored.error.rawMessage]).toEqual([
      Code.Internal,
      "internal error",
    ]);
  });

  it("answers the caller while a failed write is retried in the background; duplicates of this process get the outcome meanwhile", async () => {
    const h = openFaulty();
    const store = h.faults;
    const call = await h.call();
    store.failing.add("complete");
    const response = await claimAndRun(call, "owner-a", async () => paymentResponse("pay_1"));
    expect(paymentIdOf(response)).toBe("pay_1");
    expect(await h.record(call)).toMatchObject({ status: "in_progress" });
    const held = await h.inFlight.find(call.id)?.wait(1, new AbortController().signal);
    expect(held?.kind).toBe("outcome");
    expect(h.pending.count).toBe(1);
    store.failing.delete("complete");
    await expect.poll(async () => (await h.record(call))?.status, { timeout: 5_000 }).toBe("completed");
    expect(h.pending.count).toBe(0);
    expect(h.events.map((e) => [e.type, e.operation, e.willRetry])).toEqual([
      ["claimed", undefined, undefined],
      ["store_error", "complete", true],
      ["completed", undefined, undefined],
    ]);
  });

  it("after losing its claim, never stores its own outcome and answers its caller with the successor's, replayed", async () => {
    const h = openFaulty();
    const store = h.faults;
    const requestId = randomUUID();
    const first = await h.call({ requestId });
    let proceed!: () => void;
    const gate = new Promise<void>((resolve) => (proceed = resolve));
    // Cut off from the store: renewals fail, and the lease lapses by the store's clock.
    store.failing.add("renew");
    const running = claimAndRun(first, "owner-a", async () => {
      await gate;
      return paymentResponse("pay_1");
    });
    await expect.poll(() => h.inFlight.size).toBe(1);
    h.clock.advance(stepLeaseMs + stepLeaseGraceMs);
    // Another process takes the key over and completes it.
    const other = openSecondProcess(h);
    const second = await claimAndRun(await other.call({ requestId }), "owner-b", async () => paymentResponse("pay_2"));
    expect(paymentIdOf(second)).toBe("pay_2");
    proceed();
    const answer = await running;
    expect(paymentIdOf(answer)).toBe("pay_2");
    expect(answer.header.get(replayedHeader)).toBe("true");
    expect(await h.record(first)).toMatchObject({ status: "completed", owner: "owner-b", attempt: 2 });
    const stored = storedValue(await h.record(first));
    expect(
      stored.kind === "response" && fromBinary(CreatePaymentResponseSchema, stored.response).payment?.paymentId,
    ).toBe("pay_2");
    expect(h.events.map((e) => e.type)).toContain("claim_lost");
    expect(h.events.map((e) => e.type)).not.toContain("completed");
  });
  it("answers a stored-code error whose write fails past the last confirmed lease with UNAVAILABLE STORE_UNAVAILABLE, as it does a response", async () => {
    const faulty = openFaulty();
    const call = await faulty.call();
    const claim = await claimKey(call, "owner-a");
    if (claim.kind !== "claimed") throw new Error("expected a fresh claim");
    // Cut off from the store for longer than a lease: no renewal lands, then the write fails too.
    faulty.faults.failing.add("renew");
    const error = await expectConnectError(
      runExecution(call, "owner-a", claim.record, claim.replaced, async () => {
        await new Promise((resolve) => setTimeout(resolve, stepLeaseMs + 50));
        faulty.faults.failing.add("complete");
        throw new ConnectError("insufficient funds", Code.FailedPrecondition);
      }),
    );
    // No process vouches for the handler's error: another may take the key over and answer differently.
    expect(describeError(error)).toMatchObject({ code: Code.Unavailable, reason: ErrorReason.STORE_UNAVAILABLE });
  });

  it("answers a caller whose outcome could not be written before the claim's deadline with UNAVAILABLE STORE_UNAVAILABLE, not as a lost claim", async () => {
    const faulty = openFaulty({ retentionMs: 400, maxWaitMs: 100 });
    const call = await faulty.call();
    const claim = await claimKey(call, "owner-a");
    if (claim.kind !== "claimed") throw new Error("expected a fresh claim");
    // The handler outlives the claim's deadline (the longer of retention and lease, 1 s); then the write fails.
    const error = await expectConnectError(
      runExecution(call, "owner-a", claim.record, claim.replaced, async () => {
        await new Promise((resolve) => setTimeout(resolve, 1_100));
        faulty.faults.failing.add("complete");
        return paymentResponse("pay_1");
      }),
    );
    // Nobody took the key over: polling its own abandoned claim would end in REQUEST_IN_PROGRESS.
    expect(describeError(error)).toMatchObject({ code: Code.Unavailable, reason: ErrorReason.STORE_UNAVAILABLE });
  });
});
