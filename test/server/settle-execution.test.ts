import { randomUUID } from "node:crypto";
import { toBinary } from "@bufbuild/protobuf";
import { Code } from "@connectrpc/connect";
import { describe, expect, it } from "vitest";
import { CreatePaymentResponseSchema } from "../../gen/demo/v1/payments_pb.js";
import { claimKey } from "../../src/server/claim-key.js";
import type { DedupeCall } from "../../src/server/dedupe-call.js";
import type { InFlightResult } from "../../src/server/in-flight-waiters.js";
import { encodeOutcome, storedForm } from "../../src/server/outcome-form.js";
import { interruptExecution, releaseExecution, storeOutcome } from "../../src/server/settle-execution.js";
import {
  type FaultyStore,
  openSecondProcess,
  paymentResponse,
  type StepHarness,
  stepLeaseGraceMs,
  stepLeaseMs,
  useStepHarness,
} from "../support/dedupe-call-fixture.js";

const { open, openFaulty, start } = useStepHarness();

/** The stored form of a CreatePayment response, as `runExecution` builds it. */
function responseForm(call: DedupeCall, paymentId: string) {
  const response = paymentResponse(paymentId);
  return storedForm(
    call,
    encodeOutcome(() => ({
      kind: "response",
      response: toBinary(CreatePaymentResponseSchema, response.message as never),
      header: response.header,
      trailer: response.trailer,
    })),
  );
}

/** What a duplicate of this process waiting for the call's execution learns, within `ms`. */
function waitInProcess(h: StepHarness, call: DedupeCall, ms = 2_000): Promise<InFlightResult | undefined> {
  const running = h.inFlight.find(call.id);
  if (running === undefined) {
    throw new Error("no execution of this key runs in this process");
  }
  return running.wait(ms, new AbortController().signal);
}

/**
 * A's claim lapses while it is cut off from the store (its renewals fail),
 * and another process takes the key over as attempt 2: A is now stale.
 */
async function staleExecution(h: StepHarness & { readonly faults: FaultyStore }) {
  const requestId = randomUUID();
  const call = await h.call({ requestId });
  h.faults.failing.add("renew");
  const execution = await start(call, "owner-a");
  h.clock.advance(stepLeaseMs + stepLeaseGraceMs);
  const other = openSecondProcess(h);
  const successorCall = await other.call({ requestId });
  const successor = await start(successorCall, "owner-b");
  expect(successor.attempt).toBe(2);
  const successorRecord = await h.record(call);
  expect(successorRecord).toMatchObject({ status: "in_progress", owner: "owner-b", attempt: 2 });
  return { call, execution, successorRecord };
}

describe("storeOutcome()", () => {
  it("writes the outcome, fenced by owner and attempt, and wakes the waiters of this process with it", async () => {
    const h = open();
    const call = await h.call();
    const execution = await start(call, "owner-a");
    const waiting = waitInProcess(h, call);
    const form = responseForm(call, "pay_1");
    expect(await storeOutcome(call, execution, form)).toBe("stored");
    expect(await h.record(call)).toMatchObject({
      status: "completed",
      owner: "owner-a",
      attempt: 1,
      outcome: form.bytes,
    });
    expect(await waiting).toMatchObject({
      kind: "outcome",
      outcome: form.bytes,
      firstExecutedAt: execution.firstExecutedAt,
    });
    expect(h.inFlight.size).toBe(0);
    expect(execution.expiresAt).toBeLessThanOrEqual((await h.record(call))?.expiresAt ?? 0);
  });

  it("changes nothing when the execution is a stale attempt: the successor's claim stays, and this one is marked lost", async () => {
    const h = openFaulty();
    const { call, execution, successorRecord } = await staleExecution(h);
    const waiting = waitInProcess(h, call);
    expect(await storeOutcome(call, execution, responseForm(call, "pay_1"))).toBe("lost");
    const record = await h.record(call);
    expect(record).toMatchObject({ status: "in_progress", owner: "owner-b", attempt: 2, outcome: undefined });
    expect(record?.updatedAt).toBe(successorRecord?.updatedAt);
    expect(execution.lost).toBe(true);
    expect(execution.lostSignal.signal.aborted).toBe(true);
    // Waiters go back to the store for the successor's outcome rather than take this one.
    expect(await waiting).toEqual({ kind: "released" });
    expect(h.events.filter((e) => e.type === "claim_lost")).toMatchObject([{ operation: "complete" }]);
  });

  it("holds an outcome whose write fails in memory (pending), answers duplicates from it, and writes it when the store is back", async () => {
    const h = openFaulty();
    const call = await h.call();
    const execution = await start(call, "owner-a");
    h.faults.failing.add("complete");
    const form = responseForm(call, "pay_1");
    expect(await storeOutcome(call, execution, form)).toBe("pending");
    expect(await waitInProcess(h, call, 1)).toMatchObject({ kind: "outcome", outcome: form.bytes });
    expect(h.pending).toMatchObject({ count: 1, bytes: form.bytes.byteLength });
    expect((await h.record(call))?.status).toBe("in_progress");
    h.faults.failing.delete("complete");
    await expect.poll(async () => (await h.record(call))?.status, { timeout: 5_000 }).toBe("completed");
    expect(h.pending).toMatchObject({ count: 0, bytes: 0 });
    expect(h.inFlight.size).toBe(0);
  });

  it("drops an outcome whose write fails when it does not fit the pending budget, and leaves the claim to lapse for a takeover", async () => {
    const h = openFaulty({ maxPendingCompletions: 0 });
    const requestId = randomUUID();
    const call = await h.call({ requestId });
    const execution = await start(call, "owner-a");
    const waiting = waitInProcess(h, call);
    h.faults.failing.add("complete");
    expect(await storeOutcome(call, execution, responseForm(call, "pay_1"))).toBe("dropped");
    expect(await waiting).toEqual({ kind: "released" });
    expect(h.events.map((e) => e.type)).toContain("completion_dropped");
    h.faults.failing.delete("complete");
    expect((await h.record(call))?.status).toBe("in_progress");
    h.clock.advance(stepLeaseMs + stepLeaseGraceMs);
    const retry = await claimKey(await h.call({ requestId }), "owner-b");
    expect(retry).toMatchObject({ kind: "claimed", replaced: "takeover", record: { attempt: 2 } });
  });

  it("answers unvouched when the write fails after the last confirmed lease: nobody is answered from memory", async () => {
    const h = openFaulty();
    const call = await h.call();
    h.faults.failing.add("renew");
    const execution = await start(call, "owner-a");
    // No renewal lands for longer than a lease (real time: the lease is judged by the monotonic clock here).
    await new Promise((resolve) => setTimeout(resolve, stepLeaseMs + 50));
    h.faults.failing.add("complete");
    expect(await storeOutcome(call, execution, responseForm(call, "pay_1"))).toBe("unvouched");
    expect(await waitInProcess(h, call, 20)).toBeUndefined();
    h.faults.failing.clear();
    await expect.poll(async () => (await h.record(call))?.status, { timeout: 5_000 }).toBe("completed");
  });
});

describe("interruptExecution()", () => {
  it("marks the record interrupted, keeping it, and sends the waiters of this process to the store", async () => {
    const h = open();
    const call = await h.call();
    const execution = await start(call, "owner-a");
    const waiting = waitInProcess(h, call);
    await interruptExecution(call, execution, Code.Unavailable);
    expect(await h.record(call)).toMatchObject({ status: "interrupted", owner: "owner-a", attempt: 1 });
    expect(await waiting).toEqual({ kind: "released" });
    expect(h.events.map((e) => [e.type, e.code])).toEqual([
      ["claimed", undefined],
      ["interrupted", Code.Unavailable],
    ]);
  });

  it("changes nothing when the execution is a stale attempt", async () => {
    const h = openFaulty();
    const { call, execution, successorRecord } = await staleExecution(h);
    await interruptExecution(call, execution, Code.Unavailable);
    expect(await h.record(call)).toEqual({ ...successorRecord, readAt: h.clock.now() });
    expect(execution.lost).toBe(true);
    expect(h.events.filter((e) => e.type === "claim_lost")).toMatchObject([{ operation: "interrupt" }]);
    expect(h.events.map((e) => e.type)).not.toContain("interrupted");
  });

  it("retries a failed interruption in the background until it lands", async () => {
    const h = openFaulty();
    const call = await h.call();
    const execution = await start(call, "owner-a");
    h.faults.failing.add("interrupt");
    await interruptExecution(call, execution, Code.Unavailable);
    expect((await h.record(call))?.status).toBe("in_progress");
    expect(h.events.at(-1)).toMatchObject({ type: "store_error", operation: "interrupt", willRetry: true });
    h.faults.failing.delete("interrupt");
    await expect.poll(async () => (await h.record(call))?.status, { timeout: 5_000 }).toBe("interrupted");
  });
});

describe("releaseExecution()", () => {
  it("deletes the record, so that a retry runs afresh as attempt 1", async () => {
    const h = open();
    const requestId = randomUUID();
    const call = await h.call({ requestId });
    const execution = await start(call, "owner-a");
    const waiting = waitInProcess(h, call);
    await releaseExecution(call, execution, Code.Unauthenticated);
    expect(await h.record(call)).toBeUndefined();
    expect(await waiting).toEqual({ kind: "released" });
    expect(h.events.map((e) => [e.type, e.code])).toEqual([
      ["claimed", undefined],
      ["released", Code.Unauthenticated],
    ]);
    expect(await claimKey(await h.call({ requestId }), "owner-b")).toMatchObject({
      replaced: "none",
      record: { attempt: 1 },
    });
  });

  it("never deletes the successor's claim when the execution is a stale attempt", async () => {
    const h = openFaulty();
    const { call, execution, successorRecord } = await staleExecution(h);
    await releaseExecution(call, execution, Code.Unauthenticated);
    expect(await h.record(call)).toEqual({ ...successorRecord, readAt: h.clock.now() });
    expect(h.events.filter((e) => e.type === "claim_lost")).toMatchObject([{ operation: "release" }]);
  });

  it("leaves the record to its lease when the delete fails: a takeover after it keeps the phases", async () => {
    const h = openFaulty();
    const requestId = randomUUID();
    const call = await h.call({ requestId });
    const execution = await start(call, "owner-a");
    h.faults.failing.add("release");
    await releaseExecution(call, execution, Code.Unauthenticated);
    expect(h.events.at(-1)).toMatchObject({ type: "store_error", operation: "release", willRetry: false });
    expect((await h.record(call))?.status).toBe("in_progress");
    h.clock.advance(stepLeaseMs + stepLeaseGraceMs);
    expect(await claimKey(await h.call({ requestId }), "owner-b")).toMatchObject({
      replaced: "takeover",
      record: { attempt: 2 },
    });
  });
});
