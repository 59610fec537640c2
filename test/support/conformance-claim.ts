import type { ClaimInput, RecordKey } from "../../src/store/idempotency-store.js";

/** The record key the store conformance suites claim, complete and sweep. */
export const conformanceKey: RecordKey = {
  scope: "tenant-a",
  method: "demo.v1.PaymentService/CreatePayment",
  key: "3f0c9b1e",
};

/**
 * Where a manual store clock starts in the conformance suites: well before
 * any wall clock a store might consult by mistake, so that such a store
 * fails them.
 */
export const t0 = 1_000_000;

/** The lease of `claimInput`. */
export const leaseMs = 30_000;

/** The grace period of `claimInput`: a takeover waits for the lease and this. */
export const graceMs = 10_000;

/** How long an unfinished claim of `claimInput` lives: a day. */
export const expiresInMs = 86_400_000;

/**
 * A claim of `conformanceKey` by `owner-1` with fingerprint `fp-1`, a 30 s
 * lease, a 10 s grace period and a day's expiry, with `overrides` on top.
 */
export function claimInput(overrides: Partial<ClaimInput> = {}): ClaimInput {
  return {
    key: conformanceKey,
    fingerprint: "fp-1",
    owner: "owner-1",
    leaseMs,
    graceMs,
    expiresInMs,
    ...overrides,
  };
}
