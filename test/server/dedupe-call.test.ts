import { describe, expect, it } from "vitest";
import { createDedupeCall, type DedupeCallInit } from "../../src/server/dedupe-call.js";
import { createPayment, paymentRequest, type StepHarness, useStepHarness } from "../support/dedupe-call-fixture.js";

const harness = useStepHarness();

function open(): StepHarness {
  return harness.open({ scope: () => "tenant-a" });
}

function init(h: StepHarness, overrides: Partial<DedupeCallInit> = {}): DedupeCallInit {
  return {
    settings: h.settings,
    inFlight: h.inFlight,
    pending: h.pending,
    replayCache: h.replayCache,
    field: createPayment.input.field.requestId,
    fieldName: "request_id",
    scope: "tenant-a",
    key: "3f0c8d4e-5b7a-4c1e-9d2f-6a8b0c1d2e3f",
    retentionMs: 60_000,
    tombstoneMs: 0,
    duplicateMode: "replay",
    fingerprintExclude: [],
    ...overrides,
  };
}

describe("createDedupeCall()", () => {
  it("keys the record by scope, fully qualified method and the canonical request ID", async () => {
    const h = open();
    const call = await h.call({ requestId: "3F0C8D4E-5B7A-4C1E-9D2F-6A8B0C1D2E3F" });
    expect(call.record).toEqual({
      scope: "tenant-a",
      method: "demo.v1.PaymentService/CreatePayment",
      key: "3f0c8d4e-5b7a-4c1e-9d2f-6a8b0c1d2e3f",
    });
    expect(call.naturalKey).toBe(false);
    expect(call).toMatchObject({
      claimedAt: undefined,
      expiresAt: undefined,
      waitUntil: undefined,
      storeMs: 0,
      storeCalls: [],
    });
  });

  it("gives records that differ in scope or key different identities, even when the scope contains a newline", async () => {
    const h = open();
    const req = paymentRequest();
    const ids = [
      createDedupeCall(req, init(h)).id,
      createDedupeCall(req, init(h, { scope: "tenant-b" })).id,
      createDedupeCall(req, init(h, { key: "k2" })).id,
      // Keys are printable ASCII without newlines; the free-form scope goes last.
      createDedupeCall(req, init(h, { scope: "a\nb", key: "k" })).id,
      createDedupeCall(req, init(h, { scope: "b", key: "k" })).id,
      createDedupeCall(req, init(h, { scope: "a", key: "k" })).id,
    ];
    expect(new Set(ids).size).toBe(ids.length);
    expect(createDedupeCall(paymentRequest(), init(h)).id).toBe(ids[0]);
  });

  it("fingerprints the payload without the request ID: the same payload under two IDs matches, another payload does not", async () => {
    const h = open();
    const a = await h.call({ amountMinor: 100n });
    const b = await h.call({ amountMinor: 100n });
    const other = await h.call({ amountMinor: 101n });
    expect(a.record.key).not.toBe(b.record.key);
    expect(a.fingerprint).toBe(b.fingerprint);
    expect(a.matchesFingerprint(b.fingerprint)).toBe(true);
    expect(other.fingerprint).not.toBe(a.fingerprint);
    expect(a.matchesFingerprint(other.fingerprint)).toBe(false);
  });

  it("marks a call keyed by a natural key, which has no request ID field", async () => {
    const h = open();
    expect(createDedupeCall(paymentRequest(), init(h, { field: undefined, fieldName: "account_id" })).naturalKey).toBe(
      true,
    );
  });
});
