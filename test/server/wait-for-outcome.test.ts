import { randomUUID } from "node:crypto";
import { Code } from "@connectrpc/connect";
import { describe, expect, it } from "vitest";
import { ErrorReason } from "../../src/errors/error-reason.js";
import { findRetryDelayMs } from "../../src/errors/idempotency-error.js";
import { claimKey } from "../../src/server/claim-key.js";
import type { InFlightResult } from "../../src/server/in-flight-waiters.js";
import { expiresHeader } from "../../src/server/protocol-headers.js";
import { storeOutcome } from "../../src/server/settle-execution.js";
import { completedOutcome, pollRecord, recordState, waitFor } from "../../src/server/wait-for-outcome.js";
import { createStoreCorruptError } from "../../src/store/store-corrupt-error.js";
import { describeError, expectConnectError } from "../support/connect-assertions.js";
import {
  openSecondProcess,
  ownerOf,
  sleep,
  stepLeaseGraceMs,
  stepLeaseMs,
  useStepHarness,
} from "../support/dedupe-call-fixture.js";

const { open, openFaulty, start } = useStepHarness();

const outcomeBytes = new Uint8Array([10, 0]);

describe("waitFor()", () => {
  it("resolves with the outcome once the execution of this process stores it", async () => {
    const h = open();
    const requestId = randomUUID();
    const first = await h.call({ requestId });
    const execution = await start(first, "owner-a");
    const duplicate = await h.call({ requestId });
    const local = h.inFlight.find(duplicate.id)!;
    const waiting = waitFor(duplicate, (ms) => local.wait(ms, duplicate.req.signal));
    await sleep(20);
    expect(await storeOutcome(first, execution, { bytes: outcomeBytes, code: undefined })).toBe("stored");
    expect(await waiting).toMatchObject({
      kind: "outcome",
      outcome: outcomeBytes,
      firstExecutedAt: execution.firstExecutedAt,
    });
    expect(h.events.filter((e) => e.type === "waited")).toMatchObject([{ waitResult: "outcome" }]);
    expect(h.events.filter((e) => e.type === "waited")[0]?.waitedMs).toBeGreaterThanOrEqual(15);
  });

  it("fails with ABORTED REQUEST_IN_PROGRESS once maxWait runs out, naming until when the claim holds the key", async () => {
    const h = open({ maxWaitMs: 50 });
    const requestId = randomUUID();
    await start(await h.call({ requestId }), "owner-a");
    const duplicate = await h.call({ requestId });
    const local = h.inFlight.find(duplicate.id)!;
    duplicate.expiresAt = local.claimExpiresAt;
    const started = performance.now();
    const error = await expectConnectError(waitFor(duplicate, (ms) => local.wait(ms, duplicate.req.signal)));
    expect(performance.now() - started).toBeGreaterThanOrEqual(45);
    expect(describeError(error)).toMatchObject({ code: Code.Aborted, reason: ErrorReason.REQUEST_IN_PROGRESS });
    expect(findRetryDelayMs(error)).toBeGreaterThan(0);
    expect(error.metadata.get(expiresHeader)).toBe(new Date(local.claimExpiresAt).toISOString());
    expect(h.events.map((e) => [e.type, e.waitResult])).toEqual([
      ["claimed", undefined],
      ["waited", "timeout"],
      ["conflict", undefined],
    ]);
  });

  it("shares one maxWait budget across the waits of a call", async () => {
    const h = open({ maxWaitMs: 100 });
    const call = await h.call();
    const budgets: number[] = [];
    const wait = async (ms: number): Promise<InFlightResult | undefined> => {
      budgets.push(ms);
      await sleep(Math.min(ms, 60));
      return ms > 60 ? { kind: "released" } : undefined;
    };
    expect(await waitFor(call, wait)).toEqual({ kind: "released" });
    await expectConnectError(waitFor(call, wait));
    expect(budgets[0]).toBeGreaterThan(95);
    expect(budgets[1]).toBeLessThanOrEqual(45);
  });

  it("with maxWait 0, answers REQUEST_IN_PROGRESS without waiting", async () => {
    const h = open({ maxWaitMs: 0 });
    const requestId = randomUUID();
    await start(await h.call({ requestId }), "owner-a");
    const duplicate = await h.call({ requestId });
    const local = h.inFlight.find(duplicate.id)!;
    const error = await expectConnectError(waitFor(duplicate, (ms) => local.wait(ms, duplicate.req.signal)));
    expect(error.code).toBe(Code.Aborted);
  });
});

describe("recordState()", () => {
  it("finds the key free when there is no record, or one of another payload", async () => {
    const h = open();
    const requestId = randomUUID();
    const call = await h.call({ requestId });
    expect(recordState(call, undefined)).toEqual({ kind: "released" });
    const other = await h.call({ requestId, amountMinor: 999n });
    await claimKey(other, "owner-a");
    expect(recordState(call, await h.record(call))).toEqual({ kind: "released" });
  });

  it("gives the outcome of a completed record with the times its answer carries, and adopts its fingerprint and expiry", async () => {
    const h = open();
    const call = await h.call();
    const claim = await claimKey(call, "owner-a");
    h.clock.advance(7);
    await h.raw.complete({
      ...ownerOf(call.record, claim.record),
      outcome: outcomeBytes,
      retentionMs: 60_000,
      tombstoneMs: 1_000,
    });
    const record = (await h.record(call))!;
    const reader = await h.call({ requestId: call.record.key });
    reader.fingerprint = "an older form that matched";
    expect(recordState(reader, record)).toEqual({
      kind: "outcome",
      outcome: outcomeBytes,
      firstExecutedAt: record.createdAt,
      expiresAt: record.replayUntil,
      completedAt: record.createdAt + 7,
    });
    expect(record.replayUntil).toBe(h.clock.now() + 60_000);
    expect(reader.fingerprint).toBe(record.fingerprint);
    expect(reader.expiresAt).toBe(record.expiresAt);
    expect(completedOutcome(record)).toEqual(recordState(reader, record));
  });

  it("finds the key free once a completed record has expired or become a tombstone by the store's clock", async () => {
    const h = open();
    const call = await h.call();
    const claim = await claimKey(call, "owner-a");
    await h.raw.complete({
      ...ownerOf(call.record, claim.record),
      outcome: outcomeBytes,
      retentionMs: 60_000,
      tombstoneMs: 60_000,
    });
    h.clock.advance(60_000);
    expect((await h.record(call))?.status).toBe("tombstoned");
    expect(recordState(call, await h.record(call))).toEqual({ kind: "released" });
    h.clock.advance(60_000);
    expect(recordState(call, await h.record(call))).toEqual({ kind: "released" });
  });

  it("finds the key free when the claim was interrupted, or its lease and grace lapsed, and still running before that", async () => {
    const h = open();
    const requestId = randomUUID();
    const running = await h.call({ requestId });
    await claimKey(running, "owner-a");
    expect(recordState(running, await h.record(running))).toBeUndefined();
    h.clock.advance(stepLeaseMs + stepLeaseGraceMs - 1);
    expect(recordState(running, await h.record(running))).toBeUndefined();
    h.clock.advance(1);
    expect(recordState(running, await h.record(running))).toEqual({ kind: "released" });

    const interrupted = await h.call();
    const claim = await claimKey(interrupted, "owner-b");
    await h.raw.interrupt(ownerOf(interrupted.record, claim.record));
    expect(recordState(interrupted, await h.record(interrupted))).toEqual({ kind: "released" });
  });
});

describe("pollRecord()", () => {
  it("polls the store until an execution of another process stores its outcome", async () => {
    const h = open();
    const other = openSecondProcess(h);
    const requestId = randomUUID();
    const first = await other.call({ requestId });
    const execution = await start(first, "owner-a");
    const duplicate = await h.call({ requestId });
    setTimeout(() => void storeOutcome(first, execution, { bytes: outcomeBytes, code: undefined }), 30);
    expect(await pollRecord(duplicate, 2_000)).toMatchObject({ kind: "outcome", outcome: outcomeBytes });
  });

  it("gives up with undefined after its timeout while the execution still runs", async () => {
    const h = open();
    const other = openSecondProcess(h);
    const requestId = randomUUID();
    await start(await other.call({ requestId }), "owner-a");
    const duplicate = await h.call({ requestId });
    const started = performance.now();
    expect(await pollRecord(duplicate, 60)).toBeUndefined();
    expect(performance.now() - started).toBeGreaterThanOrEqual(55);
    expect(performance.now() - started).toBeLessThan(1_000);
  });

  it("stops at once when the call is aborted", async () => {
    const h = open();
    const requestId = randomUUID();
    await start(await openSecondProcess(h).call({ requestId }), "owner-a");
    const abort = new AbortController();
    const duplicate = await h.call({ requestId }, { signal: abort.signal });
    setTimeout(() => abort.abort(), 20);
    const started = performance.now();
    expect(await pollRecord(duplicate, 5_000)).toBeUndefined();
    expect(performance.now() - started).toBeLessThan(1_000);
  });

  it("keeps polling through a failing read, and reports it", async () => {
    const h = openFaulty();
    const requestId = randomUUID();
    const first = await openSecondProcess(h).call({ requestId });
    const execution = await start(first, "owner-a");
    const duplicate = await h.call({ requestId });
    h.faults.failing.add("get");
    setTimeout(() => {
      h.faults.failing.delete("get");
      void storeOutcome(first, execution, { bytes: outcomeBytes, code: undefined });
    }, 40);
    expect(await pollRecord(duplicate, 2_000)).toMatchObject({ kind: "outcome" });
    const storeErrors = h.events.filter((e) => e.type === "store_error");
    expect(storeErrors.length).toBeGreaterThan(0);
    expect(new Set(storeErrors.map((e) => `${e.operation} willRetry=${e.willRetry}`))).toEqual(
      new Set(["get willRetry=true"]),
    );
  });

  it("fails with DATA_LOSS STORE_CORRUPT on a damaged record rather than take it for an absent one", async () => {
    const h = open({}, (raw) => ({
      ...raw,
      get: (key) => Promise.reject(createStoreCorruptError(key, "checksum mismatch")),
    }));
    const error = await expectConnectError(pollRecord(await h.call(), 2_000));
    expect(describeError(error)).toMatchObject({ code: Code.DataLoss, reason: ErrorReason.STORE_CORRUPT });
  });
});
