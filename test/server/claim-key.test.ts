import { randomUUID } from "node:crypto";
import { Code } from "@connectrpc/connect";
import { describe, expect, it } from "vitest";
import { ErrorReason } from "../../src/errors/error-reason.js";
import { claimKey } from "../../src/server/claim-key.js";
import { deduplicate } from "../../src/server/deduplicate.js";
import { createStoreCorruptError } from "../../src/store/store-corrupt-error.js";
import { describeError, expectConnectError } from "../support/connect-assertions.js";
import {
  ownerOf,
  paymentResponse,
  stepLeaseGraceMs,
  stepLeaseMs,
  useStepHarness,
} from "../support/dedupe-call-fixture.js";

const { open, openFaulty } = useStepHarness();

describe("claimKey()", () => {
  it("claims a free key for the owner as attempt 1, in progress under a lease, and records when by both clocks", async () => {
    const h = open();
    const call = await h.call();
    const before = performance.now();
    const claim = await claimKey(call, "owner-a");
    expect(claim).toMatchObject({
      kind: "claimed",
      replaced: "none",
      record: { status: "in_progress", attempt: 1, owner: "owner-a" },
    });
    const stored = await h.record(call);
    expect(stored).toMatchObject({
      status: "in_progress",
      owner: "owner-a",
      attempt: 1,
      fingerprint: call.fingerprint,
      leaseUntil: h.clock.now() + stepLeaseMs,
      // An unfinished claim lives as long as a completed outcome would.
      expiresAt: h.clock.now() + h.settings.retentionMs,
    });
    expect(call.expiresAt).toBe(stored?.expiresAt);
    expect(call.claimedAt?.storeMs).toBe(h.clock.now());
    expect(call.claimSentAt).toBeGreaterThanOrEqual(before);
    expect(call.claimDeadline).toBe(call.claimSentAt + h.settings.retentionMs);
  });

  it("gives an unfinished claim at least the lease to live when the retention is shorter", async () => {
    const h = open({ retentionMs: 400 });
    const call = await h.call();
    await claimKey(call, "owner-a");
    expect((await h.record(call))?.expiresAt).toBe(h.clock.now() + stepLeaseMs);
    expect(call.claimDeadline).toBe(call.claimSentAt + stepLeaseMs);
  });

  it("finds the running claim of the same request and leaves it as it is", async () => {
    const h = open();
    const requestId = randomUUID();
    await claimKey(await h.call({ requestId }), "owner-a");
    const duplicate = await h.call({ requestId });
    const claim = await claimKey(duplicate, "owner-b");
    expect(claim).toMatchObject({ kind: "existing", record: { status: "in_progress", owner: "owner-a", attempt: 1 } });
    expect(duplicate.claimedAt).toBeUndefined();
    expect(duplicate.expiresAt).toBe(claim.record.expiresAt);
    expect((await h.record(duplicate))?.owner).toBe("owner-a");
  });

  it("finds the running claim of another payload under the same request ID without taking it", async () => {
    const h = open();
    const requestId = randomUUID();
    const first = await h.call({ requestId });
    await claimKey(first, "owner-a");
    const other = await h.call({ requestId, amountMinor: 999n });
    expect(other.fingerprint).not.toBe(first.fingerprint);
    const claim = await claimKey(other, "owner-b");
    expect(claim).toMatchObject({ kind: "existing", record: { owner: "owner-a", fingerprint: first.fingerprint } });
  });

  it("finds a completed record, with its outcome, rather than claiming it again", async () => {
    const h = open();
    const requestId = randomUUID();
    const first = await h.call({ requestId });
    const claimed = await claimKey(first, "owner-a");
    const outcome = new Uint8Array([1, 2, 3]);
    expect(await h.raw.complete({ ...ownerOf(first.record, claimed.record), outcome, retentionMs: 60_000 })).toBe(true);
    const claim = await claimKey(await h.call({ requestId }), "owner-b");
    expect(claim).toMatchObject({ kind: "existing", record: { status: "completed", owner: "owner-a", attempt: 1 } });
    expect(claim.record.outcome).toEqual(outcome);
  });

  it("takes over an interrupted claim at once, as attempt 2", async () => {
    const h = open();
    const requestId = randomUUID();
    const first = await h.call({ requestId });
    const claimed = await claimKey(first, "owner-a");
    expect(await h.raw.interrupt(ownerOf(first.record, claimed.record))).toBe(true);
    const claim = await claimKey(await h.call({ requestId }), "owner-b");
    expect(claim).toMatchObject({ kind: "claimed", replaced: "takeover", record: { owner: "owner-b", attempt: 2 } });
  });

  it("takes over a claim whose lease and grace have lapsed by the store's clock, and not a moment before", async () => {
    const h = open();
    const requestId = randomUUID();
    await claimKey(await h.call({ requestId }), "owner-a");
    h.clock.advance(stepLeaseMs + stepLeaseGraceMs - 1);
    expect(await claimKey(await h.call({ requestId }), "owner-b")).toMatchObject({
      kind: "existing",
      record: { owner: "owner-a" },
    });
    h.clock.advance(1);
    const claim = await claimKey(await h.call({ requestId }), "owner-c");
    expect(claim).toMatchObject({ kind: "claimed", replaced: "takeover", record: { owner: "owner-c", attempt: 2 } });
  });

  it("never takes over a lapsed claim for another payload", async () => {
    const h = open();
    const requestId = randomUUID();
    await claimKey(await h.call({ requestId }), "owner-a");
    h.clock.advance(stepLeaseMs + stepLeaseGraceMs);
    const claim = await claimKey(await h.call({ requestId, amountMinor: 999n }), "owner-b");
    expect(claim).toMatchObject({ kind: "existing", record: { owner: "owner-a", attempt: 1 } });
  });

  it("claims afresh, as attempt 1, a key whose completed record has expired", async () => {
    const h = open({ tombstoneRetentionMs: 0 });
    const requestId = randomUUID();
    const first = await h.call({ requestId });
    const claimed = await claimKey(first, "owner-a");
    await h.raw.complete({
      ...ownerOf(first.record, claimed.record),
      outcome: new Uint8Array([1]),
      retentionMs: 60_000,
    });
    h.clock.advance(60_000);
    const claim = await claimKey(await h.call({ requestId }), "owner-b");
    expect(claim).toMatchObject({ kind: "claimed", replaced: "expired", record: { owner: "owner-b", attempt: 1 } });
  });

  it("fails closed with UNAVAILABLE STORE_UNAVAILABLE when the store cannot answer, carrying the store's error", async () => {
    const h = openFaulty();
    const store = h.faults;
    store.failing.add("claim");
    const call = await h.call();
    const error = await expectConnectError(claimKey(call, "owner-a"));
    expect(describeError(error)).toEqual({
      code: Code.Unavailable,
      reason: ErrorReason.STORE_UNAVAILABLE,
      message: "the idempotency store is unavailable, so the request did not run; retry later",
    });
    expect(error.cause).toBe(store.failure);
    expect(h.events).toMatchObject([
      { type: "store_error", operation: "claim", error: store.failure, willRetry: false },
    ]);
    expect(await h.record(call)).toBeUndefined();
  });

  it("fails with DATA_LOSS STORE_CORRUPT, not UNAVAILABLE, when the record that holds the key is damaged", async () => {
    const h = open({}, (raw) => ({
      ...raw,
      claim: (input) => Promise.reject(createStoreCorruptError(input.key, "checksum mismatch")),
    }));
    const error = await expectConnectError(claimKey(await h.call(), "owner-a"));
    expect({ code: error.code, reason: describeError(error).reason }).toEqual({
      code: Code.DataLoss,
      reason: ErrorReason.STORE_CORRUPT,
    });
  });
});

describe("deduplicate() when the claim fails", () => {
  it("never runs the handler when the store cannot claim", async () => {
    const h = openFaulty();
    h.faults.failing.add("claim");
    let runs = 0;
    const call = await h.call();
    const error = await expectConnectError(
      deduplicate(call, async () => {
        runs++;
        return paymentResponse("pay_1");
      }),
    );
    expect(error.code).toBe(Code.Unavailable);
    expect(runs).toBe(0);
    expect(h.inFlight.size).toBe(0);
  });
});
