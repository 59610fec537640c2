import type { ClaimInput, RecordKey } from "../../src/store/idempotency-store.js";

/** The record key the store conformance suites claim, complete and sweep. */
export const conformanceKey: RecordKey = {
  scope: "tenant-a",
  method: "demo.v1.PaymentService/CreatePayment",
  key: "3f0c9b1e",
};

/**
 * The time the conformance suites start at: well before any wall clock a
 * store might consult by mistake, so that such a store fails them.
 */
export const t0 = 1_000_000;

/**
 * A claim of `conformanceKey` at `t0` by `owner-1` with fingerprint `fp-1`,
 * a 30 s lease and a day's retention, with `overrides` on top.
 */
export function claimInput(overrides: Partial<ClaimInput> = {}): ClaimInput {
  return {
    key: conformanceKey,
    fingerprint: "fp-1",
    owner: "owner-1",
    now: t0,
    leaseUntil: t0 + 30_000,
    expiresAt: t0 + 86_400_000,
    ...overrides,
  };
}
