import { randomUUID } from "node:crypto";
import { describe, expect, it } from "vitest";
import { atomicClaimKey } from "../../src/server/atomic-effects.js";
import { claimKey } from "../../src/server/claim-key.js";
import { keptForm, markClaimLost } from "../../src/server/execution.js";
import { idempotencyContext } from "../../src/server/idempotency-context.js";
import { decodeStoredOutcome } from "../../src/server/stored-outcome.js";
import {
  openSecondProcess,
  ownerOf,
  sleep,
  stepLeaseGraceMs,
  stepLeaseMs,
  useStepHarness,
} from "../support/dedupe-call-fixture.js";

const { open, openFaulty, start } = useStepHarness();

describe("startExecution()", () => {
  it("registers the execution for duplicates of this process and tells the handler its key, attempt and atomic claim", async () => {
    const h = open();
    const call = await h.call();
    const execution = await start(call, "owner-a");
    expect(h.inFlight.find(call.id)).toMatchObject({ fingerprint: call.fingerprint, claimExpiresAt: call.expiresAt });
    expect(call.req.contextValues.get(idempotencyContext)).toMatchObject({
      key: call.record.key,
      method: "demo.v1.PaymentService/CreatePayment",
      attempt: 1,
      takeover: false,
    });
    expect(call.req.contextValues.get(atomicClaimKey)).toBe(execution.atomic);
    expect(execution.atomic).toMatchObject({ owner: "owner-a", attempt: 1, key: call.record, committed: undefined });
    expect(h.events).toMatchObject([{ type: "claimed", attempt: 1 }]);
  });

  it("reports a takeover as such, with its attempt", async () => {
    const h = open();
    const requestId = randomUUID();
    const first = await h.call({ requestId });
    const claim = await claimKey(first, "owner-a");
    await h.raw.interrupt(ownerOf(first.record, claim.record));
    const retry = await h.call({ requestId });
    await start(retry, "owner-b");
    expect(h.events).toMatchObject([{ type: "takeover", attempt: 2 }]);
    expect(retry.req.contextValues.get(idempotencyContext)).toMatchObject({ attempt: 2, takeover: true });
  });

  it("renews the lease by the store's clock while the handler runs", async () => {
    const h = open();
    const call = await h.call();
    await start(call, "owner-a");
    h.clock.advance(600);
    // Renewals run every third of the lease.
    await expect
      .poll(async () => (await h.record(call))?.leaseUntil, { timeout: 2_000, interval: 50 })
      .toBe(h.clock.now() + stepLeaseMs);
  });

  it("marks the claim lost when a renewal finds another execution holding the key, and aborts the handler's signal", async () => {
    const h = openFaulty();
    const requestId = randomUUID();
    const call = await h.call({ requestId });
    h.faults.failing.add("renew");
    const execution = await start(call, "owner-a");
    h.clock.advance(stepLeaseMs + stepLeaseGraceMs);
    await start(await openSecondProcess(h).call({ requestId }), "owner-b");
    h.faults.failing.delete("renew");
    await expect.poll(() => execution.lost, { timeout: 2_000, interval: 20 }).toBe(true);
    expect(execution.lostSignal.signal.aborted).toBe(true);
    expect(call.req.contextValues.get(idempotencyContext)?.signal.aborted).toBe(true);
    expect(h.events.filter((e) => e.type === "claim_lost")).toMatchObject([{ operation: "renew" }]);
  });

  it("does not take its own completion, landed while a renewal was on its way, for a lost claim", async () => {
    const h = open();
    const call = await h.call();
    const execution = await start(call, "owner-a");
    // The completion lands behind the keeper's back, as one retried after an outage would.
    expect(
      await h.raw.complete({
        key: call.record,
        owner: "owner-a",
        attempt: 1,
        outcome: new Uint8Array([1]),
        retentionMs: 60_000,
      }),
    ).toBe(true);
    expect(await h.raw.renew({ key: call.record, owner: "owner-a", attempt: 1, leaseMs: stepLeaseMs })).toBe(false);
    // Long enough for the keeper's renewal to be refused and checked.
    await sleep(stepLeaseMs / 3 + 200);
    expect(execution.lost).toBe(false);
    expect(execution.lostSignal.signal.aborted).toBe(false);
    expect(h.events.map((e) => e.type)).not.toContain("claim_lost");
  });
});

describe("markClaimLost()", () => {
  it("reports a lost claim once, however often it is learned", async () => {
    const h = open();
    const call = await h.call();
    const execution = await start(call, "owner-a");
    markClaimLost(call, execution, "complete");
    markClaimLost(call, execution, "renew");
    expect(h.events.filter((e) => e.type === "claim_lost")).toMatchObject([{ operation: "complete" }]);
    expect(execution.lost).toBe(true);
  });
});

describe("keptForm()", () => {
  it("keeps the response in replay mode, and in reject mode only that the call ran and the resource it created", async () => {
    const response = { bytes: new Uint8Array([1, 2, 3]), code: undefined };
    const replay = open();
    const replayCall = await replay.call();
    const replayed = await start(replayCall, "owner-a");
    expect(keptForm(replayCall, replayed, response)).toBe(response);
    replayed.keeper.stop();
    await replay.close();

    const reject = open({ onDuplicate: "reject" });
    const call = await reject.call();
    const execution = await start(call, "owner-a");
    execution.resource.name = "payments/pay_1";
    const kept = keptForm(call, execution, response);
    expect(decodeStoredOutcome(kept.bytes)).toEqual({ kind: "executed", resourceName: "payments/pay_1" });
  });
});
